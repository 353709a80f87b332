-- A run's slot on its machine, taken in one call (activities/control.ts, acquireSlot):
-- the slot it holds, else the lowest free one, or NULL when all are taken or the
-- machine is disabled (it drains). The machine's row lock makes concurrent takers take
-- turns; held inside one statement, it is released without waiting on any client.
-- Each statement here reads a fresh snapshot (READ COMMITTED), so the ones after the
-- lock see every lease committed before it.
CREATE FUNCTION trainyard_take_slot(p_run integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  v_machine integer;
  v_finished timestamptz;
  v_slot integer;
BEGIN
  SELECT machine_id, finished_at INTO v_machine, v_finished FROM runs WHERE id = p_run;
  -- No such run, or it is finished (the caller tells which): no slot.
  IF v_machine IS NULL OR v_finished IS NOT NULL THEN
    RETURN NULL;
  END IF;
  PERFORM 1 FROM machines WHERE id = v_machine FOR UPDATE;
  SELECT slot_index INTO v_slot FROM slot_leases WHERE run_id = p_run;
  IF v_slot IS NOT NULL THEN
    RETURN v_slot;
  END IF;
  -- Leases of runs that have finished (e.g. a workflow terminated by hand) are stale.
  DELETE FROM slot_leases l USING runs r
  WHERE l.run_id = r.id AND r.finished_at IS NOT NULL AND l.machine_id = v_machine;
  SELECT s INTO v_slot
  FROM runs r
  JOIN machines m ON m.id = r.machine_id
  CROSS JOIN generate_series(0, m.slots - 1) AS s
  WHERE r.id = p_run AND r.finished_at IS NULL AND m.enabled
    AND NOT EXISTS (SELECT 1 FROM slot_leases l WHERE l.machine_id = m.id AND l.slot_index = s)
  ORDER BY s
  LIMIT 1;
  IF v_slot IS NULL THEN
    RETURN NULL;
  END IF;
  INSERT INTO slot_leases (machine_id, slot_index, run_id, process_id)
  SELECT v_machine, v_slot, id, process_id FROM runs WHERE id = p_run;
  UPDATE runs SET slot_index = v_slot WHERE id = p_run;
  RETURN v_slot;
END
$$;

-- Workflow ids that never collide (docs/design.md, "Workflow ids and task queues").
-- The installation id: made here unless an earlier release made it (it did so lazily, for notification deliveries).
INSERT INTO "app_state" ("key", "value")
VALUES ('installation_id', to_jsonb(left(replace(gen_random_uuid()::text, '-', ''), 12)))
ON CONFLICT ("key") DO NOTHING;--> statement-breakpoint
-- A database that already had processes or notification channels may have workflows running on the
-- queues from before installation ids (`trainyard-control`, `machine-<id>`): workers poll those too
-- until `trainyard reconcile` finds none left there (workers/reconcile.ts).
INSERT INTO "app_state" ("key", "value")
SELECT 'legacy_task_queues', to_jsonb(true)
WHERE EXISTS (SELECT 1 FROM "processes") OR EXISTS (SELECT 1 FROM "notification_channels")
ON CONFLICT ("key") DO NOTHING;--> statement-breakpoint
-- Existing rows get their keys and workflow ids by hand, before the defaults and constraints:
-- their workflows are running under `training-process-<id>`, which they keep.
ALTER TABLE "processes" ADD COLUMN "key" uuid;--> statement-breakpoint
ALTER TABLE "processes" ADD COLUMN "workflow_id" text;--> statement-breakpoint
UPDATE "processes" SET "key" = gen_random_uuid(), "workflow_id" = 'training-process-' || "id";--> statement-breakpoint
ALTER TABLE "processes" ALTER COLUMN "key" SET DEFAULT gen_random_uuid();--> statement-breakpoint
ALTER TABLE "processes" ALTER COLUMN "key" SET NOT NULL;--> statement-breakpoint
ALTER TABLE "processes" ALTER COLUMN "workflow_id" SET DEFAULT '';--> statement-breakpoint
ALTER TABLE "processes" ALTER COLUMN "workflow_id" SET NOT NULL;--> statement-breakpoint
ALTER TABLE "processes" ADD CONSTRAINT "processes_key_unique" UNIQUE("key");--> statement-breakpoint
ALTER TABLE "processes" ADD CONSTRAINT "processes_workflow_id_unique" UNIQUE("workflow_id");--> statement-breakpoint
-- A new row's workflow id. Trainyard asks for one by inserting 'new' (services/installation.ts):
-- the installation, the process id (for people reading the Temporal UI) and the key (never reused,
-- so a restored backup that hands out an id again names a new workflow). A row inserted without
-- one ('', the default) is from a release before installation ids still running during a rolling
-- deploy: it gets the id that release starts its workflow under, on the old queues, which the
-- workers then poll.
CREATE FUNCTION trainyard_process_workflow_id() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  v_installation text;
BEGIN
  IF NEW.workflow_id = 'new' THEN
    SELECT value #>> '{}' INTO v_installation FROM app_state WHERE key = 'installation_id';
    IF v_installation IS NULL THEN
      RAISE EXCEPTION 'app_state has no installation_id; run the migrations again';
    END IF;
    NEW.workflow_id := 'trainyard-' || v_installation || '-process-' || NEW.id || '-'
      || left(replace(NEW.key::text, '-', ''), 12);
  ELSIF NEW.workflow_id IS NULL OR NEW.workflow_id = '' THEN
    NEW.workflow_id := 'training-process-' || NEW.id;
    INSERT INTO app_state (key, value) VALUES ('legacy_task_queues', to_jsonb(true)) ON CONFLICT (key) DO NOTHING;
  END IF;
  RETURN NEW;
END $$;--> statement-breakpoint
CREATE TRIGGER processes_workflow_id BEFORE INSERT ON "processes"
FOR EACH ROW EXECUTE FUNCTION trainyard_process_workflow_id();

// Every point of a run, as text, behind GET /api/v1/processes/:id/metrics/export: the
// way out for what the chart downsamples. Constant memory whatever the run's size: each
// series is read through a cursor, a batch at a time, and the next batch is fetched only
// when the consumer (the HTTP reply, through Readable.from) asks for more.
//
// One read-only repeatable-read transaction on a reserved connection, so the export is
// one snapshot even while a live run keeps writing. Series in name order, points in step
// order (each series' own index order: no sort of the whole run in the database).
//
// Non-finite values are kept, spelled NaN, Infinity and -Infinity: bare in CSV, as JSON
// strings in JSON lines (like the metrics endpoint); every other value is a number.
import type postgres from 'postgres';
import { nonFiniteName } from './encode.js';

export type ExportFormat = 'csv' | 'jsonl';

export const EXPORT_FORMATS: readonly ExportFormat[] = ['csv', 'jsonl'];

export const EXPORT_MEDIA: Record<ExportFormat, string> = {
  csv: 'text/csv; charset=utf-8',
  jsonl: 'application/x-ndjson; charset=utf-8',
};

/** Rows per cursor batch: one chunk of the reply each. */
const BATCH = 2000;

export async function* exportPoints(sql: postgres.Sql, runId: number, format: ExportFormat): AsyncGenerator<string> {
  const conn = await sql.reserve();
  let committed = false;
  try {
    await conn`begin isolation level repeatable read read only`;
    const series = await conn<
      { id: number; name: string }[]
    >`select id, name from metric_series where run_id = ${runId} order by name`;
    if (format === 'csv') yield 'series,step,value\n';
    for (const { id, name } of series) {
      const label = format === 'csv' ? csvField(name) : JSON.stringify(name);
      // step arrives as the bigint's decimal text, written out as is: exact beyond 2^53.
      const cursor = conn<
        { step: string; value: number }[]
      >`select step, value from metric_points where series_id = ${id} order by step`.cursor(BATCH);
      for await (const rows of cursor) {
        yield rows
          .map((row) =>
            format === 'csv'
              ? `${label},${row.step},${csvValue(row.value)}\n`
              : `{"series":${label},"step":${row.step},"value":${jsonValue(row.value)}}\n`,
          )
          .join('');
      }
    }
    await conn`commit`;
    committed = true;
  } finally {
    // Also when the client went away mid-stream (the generator is returned early):
    // the open transaction is ended before the connection goes back to the pool.
    if (!committed) await conn`rollback`.catch(() => undefined);
    conn.release();
  }
}

// String(number) is the shortest text that parses back to the same double.
function csvValue(value: number): string {
  return Number.isFinite(value) ? String(value) : nonFiniteName(value);
}

function jsonValue(value: number): string {
  return Number.isFinite(value) ? String(value) : `"${nonFiniteName(value)}"`;
}

/** RFC 4180: quoted when it holds a comma, quote or line break, quotes doubled. */
function csvField(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

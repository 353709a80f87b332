// Live status for open processes pages: one poller per web process, however many pages
// are open. Each tick reads (id, status_version, step) of the processes the open pages
// show — one indexed query for all of them — and sends each page, over its one SSE
// stream, the rows that changed since what that page was last sent. Nobody listening:
// no ticks, no queries. A stream lives only as long as what let it open: each
// keep-alive, and before rows are pushed, asks again whether its viewer still may see
// them (session, user, grants), and ends the stream when not.
import type { ServerResponse } from 'node:http';
import { sql } from 'drizzle-orm';
import type { FastifyReply } from 'fastify';
import fp from 'fastify-plugin';
import type { Db } from '../../db/client.js';
import { getProcess, type ProcessView } from '../../services/processes.js';
import { ServiceError } from '../../services/errors.js';

/** A status change reaches open pages within about this long (plus one query). */
export const TICK_MS = 200;
/** Progress alone (no status change) is re-sent at most this often per row. */
export const PROGRESS_EVERY_MS = 2000;

export interface StreamLimits {
  /** A comment line goes to every stream this often; the viewer's right to watch is re-checked then too. */
  keepaliveMs: number;
  /** Before rows are pushed, the right is re-checked when the last check is older than this. */
  recheckMs: number;
  /** Streams open at once per session (or token); more answer 429. */
  perSession: number;
  /** A client that does not read: dropped once this much waits unsent … */
  maxBufferedBytes: number;
  /** … or when a full buffer does not drain within this long. */
  drainTimeoutMs: number;
}

export const DEFAULT_STREAM_LIMITS: StreamLimits = {
  keepaliveMs: 20_000,
  recheckMs: 1000,
  perSession: 8,
  maxBufferedBytes: 1024 * 1024,
  drainTimeoutMs: 10_000,
};
const ERROR_BACKOFF_MS = 1000;
const NO_UPPER_BOUND = 2_147_483_647;

export interface Sent {
  version: number;
  step: number | null;
  at: number;
}

export interface Subscriber {
  templateId: number;
  /** Rows with id > after … */
  after: number;
  /** … and id <= upTo; null on the last page, where new rows appear. */
  upTo: number | null;
  /** What this page has shown, by process id. */
  sent: Map<number, Sent>;
  /** Renders a changed row, or a whole new process block. */
  render(view: ProcessView, version: number, kind: 'row' | 'block'): string;
  write(chunk: string): void;
  /** Whether the viewer may still watch (re-read from the database); false ends the stream. */
  stillAllowed?(): Promise<boolean>;
  /** Ends the stream: its viewer lost the right to it. */
  end?(): void;
}

interface Current {
  templateId: number;
  version: number;
  step: number | null;
}

/** One SSE event; data may span lines (the browser joins them back with \n). */
export function sseEvent(event: string, data: string): string {
  return `event: ${event}\n${data
    .split(/\r\n|\r|\n/)
    .map((line) => `data: ${line}\n`)
    .join('')}\n`;
}

export async function statusVersions(db: Db, ids: readonly number[]): Promise<Map<number, number>> {
  if (ids.length === 0) return new Map();
  const rows = await db.execute<{ id: number; status_version: string | number }>(
    sql`select id, status_version from processes where id = any(${sql.raw(`'{${ids.map((id) => Math.trunc(id)).join(',')}}'`)}::int[])`,
  );
  return new Map([...rows].map((row) => [Number(row.id), Number(row.status_version)]));
}

export class StatusFeed {
  private readonly subscribers = new Set<Subscriber>();
  /** When each subscriber's right to watch was last confirmed. */
  private readonly verifiedAt = new Map<Subscriber, number>();
  private timer: NodeJS.Timeout | null = null;
  private keepalive: NodeJS.Timeout | null = null;
  private ticking = false;
  private closed = false;
  /** Counters for tests and the curious: queries made, events sent. */
  readonly stats = { ticks: 0, events: 0 };

  readonly limits: StreamLimits;

  constructor(
    private readonly db: Db,
    private readonly log: (message: string) => void = () => {},
    limits: Partial<StreamLimits> = {},
  ) {
    this.limits = { ...DEFAULT_STREAM_LIMITS, ...limits };
  }

  get size(): number {
    return this.subscribers.size;
  }

  subscribe(subscriber: Subscriber): () => void {
    this.subscribers.add(subscriber);
    this.verifiedAt.set(subscriber, Date.now());
    this.schedule(0);
    this.keepalive ??= setInterval(() => {
      for (const s of this.subscribers) {
        void this.verify(s).then((ok) => {
          if (ok) s.write(': keepalive\n\n');
        });
      }
    }, this.limits.keepaliveMs);
    return () => this.unsubscribe(subscriber);
  }

  private unsubscribe(subscriber: Subscriber): void {
    this.subscribers.delete(subscriber);
    this.verifiedAt.delete(subscriber);
    if (this.subscribers.size === 0 && this.keepalive) {
      clearInterval(this.keepalive);
      this.keepalive = null;
    }
  }

  /** Asks again whether the subscriber may watch; when not (or when asking fails), ends its stream. */
  private async verify(s: Subscriber): Promise<boolean> {
    if (!s.stillAllowed) return true;
    let ok: boolean;
    try {
      ok = await s.stillAllowed();
    } catch (error) {
      // Fail closed: the page's reconnect asks again from scratch.
      this.log(`status feed: re-check failed: ${(error as Error).message}`);
      ok = false;
    }
    if (!this.subscribers.has(s)) return false;
    if (ok) {
      this.verifiedAt.set(s, Date.now());
      return true;
    }
    this.unsubscribe(s);
    s.end?.();
    return false;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.keepalive) clearInterval(this.keepalive);
    this.subscribers.clear();
    this.verifiedAt.clear();
  }

  private schedule(delayMs: number): void {
    if (this.closed || this.ticking || this.subscribers.size === 0) return;
    if (this.timer) {
      if (delayMs > 0) return;
      clearTimeout(this.timer);
    }
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.tick();
    }, delayMs);
  }

  private async tick(): Promise<void> {
    if (this.subscribers.size === 0) return;
    this.ticking = true;
    let delay = TICK_MS;
    try {
      await this.poll();
    } catch (error) {
      this.log(`status feed: ${(error as Error).message}`);
      delay = ERROR_BACKOFF_MS;
    } finally {
      this.ticking = false;
    }
    this.schedule(delay);
  }

  private async poll(): Promise<void> {
    this.stats.ticks += 1;
    // The id window each template's pages watch, widened to cover all of them.
    const windows = new Map<number, { lo: number; hi: number }>();
    for (const s of this.subscribers) {
      const hi = s.upTo ?? NO_UPPER_BOUND;
      const w = windows.get(s.templateId);
      windows.set(s.templateId, w ? { lo: Math.min(w.lo, s.after), hi: Math.max(w.hi, hi) } : { lo: s.after, hi });
    }
    const array = (values: number[]) => sql.raw(`'{${values.map((v) => Math.trunc(v)).join(',')}}'::int[]`);
    const keys = [...windows.keys()];
    // Step only for active rows: a progress bar moves, a finished one does not.
    const rows = await this.db.execute<{
      id: number;
      template_id: number;
      status_version: string | number;
      step: number | null;
    }>(sql`
      select p.id, p.template_id, p.status_version,
        case when p.status in ('starting', 'running', 'stopping')
          then (select r.step from runs r where r.process_id = p.id order by r.number desc limit 1) end as step
      from processes p
      join unnest(${array(keys)}, ${array(keys.map((k) => windows.get(k)!.lo))}, ${array(keys.map((k) => windows.get(k)!.hi))}) as w(template_id, lo, hi)
        on p.template_id = w.template_id and p.id > w.lo and p.id <= w.hi
      where not p.deleting`);
    const current = new Map<number, Current>();
    for (const row of rows) {
      current.set(Number(row.id), {
        templateId: Number(row.template_id),
        version: Number(row.status_version),
        step: row.step === null ? null : Number(row.step),
      });
    }

    const now = Date.now();
    const wanted = new Map<Subscriber, Array<{ id: number; kind: 'row' | 'block' }>>();
    const need = new Set<number>();
    for (const s of this.subscribers) {
      const list: Array<{ id: number; kind: 'row' | 'block' }> = [];
      for (const [id, sent] of s.sent) {
        const cur = current.get(id);
        if (!cur || cur.templateId !== s.templateId) {
          s.sent.delete(id);
          this.send(s, 'gone', String(id));
          continue;
        }
        if (cur.version !== sent.version || (cur.step !== sent.step && now - sent.at >= PROGRESS_EVERY_MS))
          list.push({ id, kind: 'row' });
      }
      if (s.upTo === null) {
        for (const [id, cur] of current) {
          if (cur.templateId === s.templateId && id > s.after && !s.sent.has(id)) list.push({ id, kind: 'block' });
        }
      }
      if (list.length > 0) wanted.set(s, list);
      for (const { id } of list) need.add(id);
    }
    if (need.size === 0) return;

    const views = new Map<number, ProcessView | null>();
    const ids = [...need];
    for (let i = 0; i < ids.length; i += 10) {
      await Promise.all(
        ids.slice(i, i + 10).map(async (id) => {
          try {
            views.set(id, await getProcess({ db: this.db }, id));
          } catch (error) {
            if (error instanceof ServiceError && error.code === 'not_found') views.set(id, null);
            else throw error;
          }
        }),
      );
    }
    for (const [s, list] of wanted) {
      if (!this.subscribers.has(s)) continue;
      // Rows go only to a viewer who still may see them.
      if (Date.now() - (this.verifiedAt.get(s) ?? 0) >= this.limits.recheckMs && !(await this.verify(s))) continue;
      for (const { id, kind } of list) {
        const view = views.get(id);
        const cur = current.get(id)!;
        if (view === null) {
          if (s.sent.delete(id)) this.send(s, 'gone', String(id));
          continue;
        }
        if (!view) continue;
        s.sent.set(id, { version: cur.version, step: cur.step, at: now });
        this.send(s, kind, s.render(view, cur.version, kind));
      }
    }
  }

  private send(s: Subscriber, event: string, data: string): void {
    this.stats.events += 1;
    s.write(sseEvent(event, data));
  }
}

/** What a page's stream watches and how it renders; the plugin does the rest. */
export type StreamRequest = Omit<Subscriber, 'write' | 'end'>;

declare module 'fastify' {
  interface FastifyInstance {
    /** The live status feed of this web process (open streams and queries made, for tests and the curious). */
    statusFeed: StatusFeed;
    /**
     * Answers the request with an SSE stream fed by the status feed, as long as the page
     * stays and `stillAllowed` holds; at most `limits.perSession` at once per credential (429).
     */
    openStatusStream(reply: FastifyReply, credentialKey: string, stream: StreamRequest): FastifyReply | undefined;
  }
}

/**
 * The feed, created once per web process and closed with it, and the SSE plumbing of
 * its streams: the per-session cap, slow readers dropped, every stream ended at shutdown
 * so closing never waits on an open page.
 */
export const statusFeedPlugin = fp<{ db: Db; limits?: Partial<StreamLimits> }>(async (app, { db, limits }) => {
  const feed = new StatusFeed(db, (message) => app.log.warn(message), limits ?? {});
  app.decorate('statusFeed', feed);
  /** Open streams per session or token, for the per-session cap. */
  const streamsOf = new Map<string, number>();
  const openStreams = new Set<ServerResponse>();

  app.decorate('openStatusStream', function (reply: FastifyReply, credentialKey: string, stream: StreamRequest) {
    const open = streamsOf.get(credentialKey) ?? 0;
    if (open >= feed.limits.perSession) {
      return reply
        .code(429)
        .header('retry-after', '10')
        .type('text/plain; charset=utf-8')
        .send(`At most ${feed.limits.perSession} live streams per session; close a tab and try again.`);
    }
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store, no-transform',
      // nginx and friends must not buffer a stream.
      'x-accel-buffering': 'no',
      connection: 'keep-alive',
    });
    res.write('retry: 2000\n\n');
    // A client that stops reading must not make us hold its rows in memory.
    let drainTimer: NodeJS.Timeout | null = null;
    const dropSlowClient = () => res.destroy();
    const unsubscribe = feed.subscribe({
      ...stream,
      write: (chunk: string) => {
        if (res.writableEnded || res.destroyed) return;
        const flushed = res.write(chunk);
        if (res.writableLength > feed.limits.maxBufferedBytes) return dropSlowClient();
        if (!flushed && !drainTimer) {
          drainTimer = setTimeout(dropSlowClient, feed.limits.drainTimeoutMs);
          res.once('drain', () => {
            if (drainTimer) clearTimeout(drainTimer);
            drainTimer = null;
          });
        }
      },
      end: () => {
        if (res.writableEnded || res.destroyed) return;
        res.write(sseEvent('bye', ''));
        res.end();
      },
    });
    openStreams.add(res);
    streamsOf.set(credentialKey, open + 1);
    // The page went away (closed, navigated, network gone): stop feeding it.
    res.once('close', () => {
      unsubscribe();
      openStreams.delete(res);
      if (drainTimer) clearTimeout(drainTimer);
      const left = (streamsOf.get(credentialKey) ?? 1) - 1;
      if (left > 0) streamsOf.set(credentialKey, left);
      else streamsOf.delete(credentialKey);
    });
    res.on('error', () => undefined);
    return undefined;
  });

  app.addHook('preClose', async () => {
    feed.close();
    for (const res of openStreams) {
      res.write(sseEvent('bye', ''));
      res.end();
    }
    openStreams.clear();
  });
});

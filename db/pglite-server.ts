// Serves one embedded PGlite to many local connections (web, worker, CLI). PGlite has
// a single backend, so the messages of different connections must never interleave
// inside an extended-protocol exchange (Parse … Sync: an unnamed statement of one
// connection would be bound with another's parameters) or inside a transaction. Here a
// connection holds the backend from its first message until a Sync or a simple Query
// leaves no transaction open; the others wait their turn, first come first served.
// A holder that then goes quiet (an open transaction, a half-sent exchange) is dropped
// after `idleTimeoutMs` and its transaction rolled back, so it cannot stall the others.
//
// There is no authentication: PGlite trusts whoever connects. The server listens on a
// Unix socket only, and the caller puts it in a directory only its user may enter.
import fs from 'node:fs';
import net from 'node:net';
import type { PGlite } from '@electric-sql/pglite';

const SSL_REQUEST = 80877103;
const CANCEL_REQUEST = 80877102;
const PROTOCOL_3 = 196608;
const SYNC = Uint8Array.from([0x53, 0, 0, 0, 4]);

/** How long a connection may hold the backend without sending anything. */
export const DEFAULT_IDLE_TIMEOUT_MS = 30_000;

export interface PgliteServerOptions {
  /** A connection holding the backend (open transaction or exchange) and silent this long is dropped. */
  idleTimeoutMs?: number;
}

/** FATAL 25P03, as PostgreSQL's idle_in_transaction_session_timeout answers. */
function idleTimeoutError(ms: number): Buffer {
  const field = (code: string, value: string) => Buffer.concat([Buffer.from(code + value, 'utf8'), Buffer.from([0])]);
  const body = Buffer.concat([
    field('S', 'FATAL'),
    field('V', 'FATAL'),
    field('C', '25P03'),
    field(
      'M',
      `terminating connection: it held the embedded database for ${ms} ms without sending anything (open transaction or unfinished exchange)`,
    ),
    Buffer.from([0]),
  ]);
  const header = Buffer.alloc(5);
  header[0] = 0x45; // E: ErrorResponse
  header.writeInt32BE(4 + body.length, 1);
  return Buffer.concat([header, body]);
}

interface Connection {
  id: number;
  socket: net.Socket;
  buffer: Buffer;
  started: boolean;
  queue: Uint8Array[];
  closed: boolean;
  /** Armed while this connection holds the backend and has nothing queued. */
  idleTimer: NodeJS.Timeout | null;
}

export class PgliteServer {
  private server: net.Server | null = null;
  private readonly connections = new Set<Connection>();
  /** The connection the backend belongs to until its exchange (and transaction) ends. */
  private owner: Connection | null = null;
  private pumping = false;
  private nextId = 1;

  private readonly idleTimeoutMs: number;

  constructor(
    private readonly db: PGlite,
    options: PgliteServerOptions = {},
  ) {
    this.idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  }

  /** Listens on the Unix socket `socketPath` (a file left there by a killed server is replaced). */
  async listen(socketPath: string): Promise<void> {
    fs.rmSync(socketPath, { force: true });
    this.server = net.createServer((socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(socketPath, () => resolve());
    });
  }

  async close(): Promise<void> {
    for (const connection of this.connections) {
      this.disarm(connection);
      connection.socket.destroy();
    }
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private accept(socket: net.Socket): void {
    const connection: Connection = {
      id: this.nextId++,
      socket,
      buffer: Buffer.alloc(0),
      started: false,
      queue: [],
      closed: false,
      idleTimer: null,
    };
    this.connections.add(connection);
    socket.on('data', (data) => {
      connection.buffer = connection.buffer.length === 0 ? data : Buffer.concat([connection.buffer, data]);
      this.split(connection);
      // Only a whole message counts as activity: bytes trickled in do not keep the backend.
      if (connection.queue.length > 0) this.disarm(connection);
      void this.pump();
    });
    const gone = () => void this.drop(connection);
    socket.on('close', gone);
    socket.on('error', gone);
  }

  /** Cuts complete protocol messages off the connection's buffer into its queue. */
  private split(connection: Connection): void {
    for (;;) {
      const buffer = connection.buffer;
      if (!connection.started) {
        // Startup-phase packets have no type byte: length, then a code.
        if (buffer.length < 8) return;
        const length = buffer.readInt32BE(0);
        const code = buffer.readInt32BE(4);
        if (buffer.length < length) return;
        connection.buffer = buffer.subarray(length);
        if (code === SSL_REQUEST) {
          connection.socket.write('N');
          continue;
        }
        if (code === CANCEL_REQUEST) {
          // No backend process to interrupt: the statement runs to its end.
          connection.socket.end();
          return;
        }
        if (code !== PROTOCOL_3) {
          connection.socket.destroy();
          return;
        }
        connection.started = true;
        connection.queue.push(new Uint8Array(buffer.subarray(0, length)));
        continue;
      }
      if (buffer.length < 5) return;
      const length = 1 + buffer.readInt32BE(1);
      if (buffer.length < length) return;
      connection.queue.push(new Uint8Array(buffer.subarray(0, length)));
      connection.buffer = buffer.subarray(length);
    }
  }

  private nextConnection(): Connection | null {
    if (this.owner) return this.owner.queue.length > 0 ? this.owner : null;
    for (const connection of this.connections) if (connection.queue.length > 0) return connection;
    return null;
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      for (let connection = this.nextConnection(); connection; connection = this.nextConnection()) {
        const message = connection.queue.shift()!;
        const type = connection.started && message.length > 0 ? message[0] : 0;
        if (type === 0x58 /* X: Terminate */) {
          connection.socket.end();
          await this.release(connection);
          continue;
        }
        this.owner = connection;
        this.disarm(connection);
        const reply = await this.db.runExclusive(() => this.db.execProtocolRaw(message));
        if (!connection.closed && reply.length > 0) connection.socket.write(reply);
        // A Sync or a simple Query ends an exchange; outside a transaction the backend is free.
        const endsExchange = type === 0x53 /* S */ || type === 0x51 /* Q */ || type === 0;
        if (endsExchange && !this.db.isInTransaction()) this.owner = null;
        else if (connection.queue.length === 0) this.arm(connection);
      }
    } finally {
      this.pumping = false;
    }
  }

  /** Starts the clock on a connection that holds the backend and has sent nothing more yet. */
  private arm(connection: Connection): void {
    if (connection.closed || connection.idleTimer) return;
    connection.idleTimer = setTimeout(() => {
      connection.idleTimer = null;
      if (this.owner !== connection || connection.queue.length > 0 || connection.closed) return;
      // Told why (as PostgreSQL would), then dropped now: the drop rolls its transaction
      // back and hands the backend to the next connection, whatever the client does.
      connection.socket.end(idleTimeoutError(this.idleTimeoutMs));
      connection.socket.destroySoon();
      void this.drop(connection);
    }, this.idleTimeoutMs);
    connection.idleTimer.unref();
  }

  private disarm(connection: Connection): void {
    if (connection.idleTimer) clearTimeout(connection.idleTimer);
    connection.idleTimer = null;
  }

  private async drop(connection: Connection): Promise<void> {
    if (connection.closed) return;
    connection.closed = true;
    this.disarm(connection);
    connection.queue = [];
    this.connections.delete(connection);
    await this.release(connection);
    void this.pump();
  }

  /** Frees the backend from a connection that went away mid-exchange or mid-transaction. */
  private async release(connection: Connection): Promise<void> {
    if (this.owner !== connection) return;
    // A Sync ends a half-done exchange; exec takes PGlite's lock itself, so it runs outside runExclusive.
    await this.db.runExclusive(() => this.db.execProtocolRaw(SYNC));
    if (this.db.isInTransaction()) await this.db.exec('ROLLBACK');
    this.owner = null;
  }
}

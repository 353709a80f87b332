// Serves one embedded PGlite to many loopback connections (web, worker, CLI). PGlite has
// a single backend, so the messages of different connections must never interleave
// inside an extended-protocol exchange (Parse … Sync: an unnamed statement of one
// connection would be bound with another's parameters) or inside a transaction. Here a
// connection holds the backend from its first message until a Sync or a simple Query
// leaves no transaction open; the others wait their turn, first come first served.
import net from 'node:net';
import type { PGlite } from '@electric-sql/pglite';

const SSL_REQUEST = 80877103;
const CANCEL_REQUEST = 80877102;
const PROTOCOL_3 = 196608;
const SYNC = Uint8Array.from([0x53, 0, 0, 0, 4]);

interface Connection {
  id: number;
  socket: net.Socket;
  buffer: Buffer;
  started: boolean;
  queue: Uint8Array[];
  closed: boolean;
}

export class PgliteServer {
  private server: net.Server | null = null;
  private readonly connections = new Set<Connection>();
  /** The connection the backend belongs to until its exchange (and transaction) ends. */
  private owner: Connection | null = null;
  private pumping = false;
  private nextId = 1;

  constructor(private readonly db: PGlite) {}

  async listen(port = 0, host = '127.0.0.1'): Promise<number> {
    this.server = net.createServer((socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, host, () => resolve());
    });
    return (this.server.address() as net.AddressInfo).port;
  }

  async close(): Promise<void> {
    for (const connection of this.connections) connection.socket.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private accept(socket: net.Socket): void {
    socket.setNoDelay(true);
    const connection: Connection = { id: this.nextId++, socket, buffer: Buffer.alloc(0), started: false, queue: [], closed: false };
    this.connections.add(connection);
    socket.on('data', (data) => {
      connection.buffer = connection.buffer.length === 0 ? data : Buffer.concat([connection.buffer, data]);
      this.split(connection);
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
        const reply = await this.db.runExclusive(() => this.db.execProtocolRaw(message));
        if (!connection.closed && reply.length > 0) connection.socket.write(reply);
        // A Sync or a simple Query ends an exchange; outside a transaction the backend is free.
        const endsExchange = type === 0x53 /* S */ || type === 0x51 /* Q */ || type === 0;
        if (endsExchange && !this.db.isInTransaction()) this.owner = null;
      }
    } finally {
      this.pumping = false;
    }
  }

  private async drop(connection: Connection): Promise<void> {
    if (connection.closed) return;
    connection.closed = true;
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

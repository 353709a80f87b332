// Placeholder until the foundation's global setup lands (Temporal dev server, fresh PostgreSQL database).
export default async function setup(): Promise<void> {}

// P3's floor: the rows a save writes, sent through the database driver alone, without TypeORM and
// without the module, on a connection of their own. Beside the module's save it shows how much of
// P3's ratio is the database writing the event and delivery rows, and how much is the software
// around them.
import Database from 'better-sqlite3';
import pg from 'pg';

const ORDER_INSERT = 'INSERT INTO "bench_order" ("tenantId", "state") VALUES ($1, $2)';
const EVENT_COLUMNS = '"linkedSpaceId", "entityName", "listenerEntityId", "entityId", "state", "createdOn", "occurredAt"';
const DELIVERY_COLUMNS = '"eventId", "listenerId", "urlId", "linkedSpaceId", "state", "attempts", "nextAttemptAt", "createdOn"';

/**
 * Savers that write, in one transaction, an Order row and, for each given list of listeners, the
 * event and one delivery per listener that the module writes for it; `bare` writes the Order alone.
 * `listenersBySpace` maps a space id to the `{ id, urlId }` of its matching listeners.
 */
export async function driverFloor(database, file, dataSource, listenersBySpace) {
  return database.startsWith('sqlite') ? sqliteFloor(file, dataSource, listenersBySpace) : postgresFloor(listenersBySpace);
}

/** Reads the `{ id, urlId }` of the ACTIVE listeners of each space, as the capture matches them. */
export async function listenersOfSpaces(dataSource, spaceIds) {
  const rows = await dataSource.query(
    `SELECT "id", "urlId", "linkedSpaceId" FROM "webhook_listener" WHERE "state" = 'ACTIVE' ORDER BY "id"`,
  );
  return Object.fromEntries(
    spaceIds.map((spaceId) => [
      spaceId,
      rows.filter((row) => Number(row.linkedSpaceId) === spaceId).map((row) => ({ id: Number(row.id), urlId: Number(row.urlId) })),
    ]),
  );
}

async function sqliteFloor(file, dataSource, listenersBySpace) {
  const db = new Database(file);
  // The same journal and sync level as the DataSource the module writes through.
  const [{ journal_mode: journal }] = await dataSource.query('PRAGMA journal_mode');
  const [{ synchronous }] = await dataSource.query('PRAGMA synchronous');
  db.pragma(`journal_mode = ${journal}`);
  db.pragma(`synchronous = ${synchronous}`);
  const begin = db.prepare('BEGIN');
  const commit = db.prepare('COMMIT');
  const order = db.prepare(ORDER_INSERT.replace(/\$\d/g, '?'));
  const event = db.prepare(`INSERT INTO "webhook_event" (${EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)`);
  const deliveries = new Map();
  const deliveryInsert = (count) => {
    if (!deliveries.has(count)) {
      const rows = Array.from({ length: count }, () => '(?, ?, ?, ?, ?, 0, ?, ?)').join(', ');
      deliveries.set(count, db.prepare(`INSERT INTO "webhook_delivery" (${DELIVERY_COLUMNS}) VALUES ${rows}`));
    }
    return deliveries.get(count);
  };
  const saver = (spaceId) => async () => {
    const listeners = listenersBySpace[spaceId] ?? [];
    begin.run();
    const { lastInsertRowid } = order.run(spaceId, 'CONFIRMED');
    if (listeners.length > 0) {
      const at = new Date();
      const createdOn = sqliteDateTime(at);
      const eventId = event.run(spaceId, 'Order', 1001, String(lastInsertRowid), 'CONFIRMED', createdOn, at.getTime()).lastInsertRowid;
      deliveryInsert(listeners.length).run(
        listeners.flatMap((listener) => [eventId, listener.id, listener.urlId, spaceId, 'PENDING', at.getTime(), createdOn]),
      );
    }
    commit.run();
  };
  return { saver, close: async () => db.close() };
}

/** The event and its deliveries in one prepared statement, as the module sends them on PostgreSQL. */
async function postgresFloor(listenersBySpace) {
  const client = new pg.Client({ connectionString: process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test' });
  await client.connect();
  const eventAndDeliveries = {
    name: 'bench_floor_event_and_deliveries',
    text:
      `WITH event AS (INSERT INTO "webhook_event" (${EVENT_COLUMNS})` +
      ` VALUES ($1::int, $2::varchar, $3::bigint, $4::varchar, $5::varchar, $6::timestamp, $9::bigint) RETURNING "id")` +
      ` INSERT INTO "webhook_delivery" (${DELIVERY_COLUMNS})` +
      ` SELECT event.id, listener.id, listener.url_id, $1::int, $7::varchar, 0, $9::bigint, $8::timestamp` +
      ` FROM event CROSS JOIN unnest($10::int[], $11::int[]) AS listener (id, url_id)`,
  };
  const saver = (spaceId) => async () => {
    const listeners = listenersBySpace[spaceId] ?? [];
    await client.query('BEGIN');
    const { rows } = await client.query(`${ORDER_INSERT} RETURNING "id"`, [spaceId, 'CONFIRMED']);
    if (listeners.length > 0) {
      const at = new Date();
      await client.query({
        ...eventAndDeliveries,
        values: [
          spaceId,
          'Order',
          1001,
          String(rows[0].id),
          'CONFIRMED',
          at,
          'PENDING',
          at,
          at.getTime(),
          listeners.map((listener) => listener.id),
          listeners.map((listener) => listener.urlId),
        ],
      });
    }
    await client.query('COMMIT');
  };
  return { saver, close: () => client.end() };
}

/** SQLite's `datetime` text of a moment in UTC, as TypeORM stores a `datetime` column there. */
function sqliteDateTime(at) {
  return at.toISOString().replace('T', ' ').replace('Z', '');
}

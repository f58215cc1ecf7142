import type { QueryRunner } from 'typeorm';

/**
 * Runs `rebuild`, which copies `table` into a new table of the same name (SQLite's way of changing
 * a table), and then gives the new table the AUTOINCREMENT counter of the old one. Left alone, the
 * counter would start after the highest id copied, and the ids of rows removed by retention would be
 * given again: receivers drop duplicates by `eventId` and by `webhook-id` (`msg_<delivery id>`).
 */
export async function keepingIdSequence(queryRunner: QueryRunner, table: string, rebuild: () => Promise<void>): Promise<void> {
  const [sequence]: { seq: number }[] = await queryRunner.query(`SELECT seq FROM sqlite_sequence WHERE name = ?`, [table]);
  await rebuild();
  if (!sequence) return;
  await queryRunner.query(`DELETE FROM sqlite_sequence WHERE name = ?`, [table]);
  await queryRunner.query(`INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)`, [table, sequence.seq]);
}

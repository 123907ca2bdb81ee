/**
 * The Bayes training queue on PostgreSQL (issue 16; schema/migrations-postgres/061-spam-training.sql): every node
 * adds the lessons of its IMAP sessions, and the nodes' trainers (src/filters/training-queue.ts SpamTrainer) take
 * them with FOR UPDATE SKIP LOCKED and a lease, so each lesson is told to spamd by one node, once unless that node
 * dies between telling and deleting it (at-least-once: spamd answers a lesson it already learned with nothing new).
 * Every failure is a TempFailure (PgState).
 */
import type { TrainingJob, TrainingLesson, TrainingQueue } from '../../filters/training-queue.js';
import type { PgState } from './pool.js';

export class PgTrainingQueue implements TrainingQueue {
  constructor(private readonly pg: PgState) {}

  async add(lessons: TrainingLesson[]): Promise<void> {
    if (!lessons.length) return;
    await this.pg.query(
      'INSERT INTO spam_training (login, kind, message) SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[])',
      [lessons.map((l) => l.login), lessons.map((l) => l.kind), lessons.map((l) => l.message)],
    );
  }

  async take(holder: string, max: number, leaseMs: number): Promise<TrainingJob[]> {
    const r = await this.pg.query<{ id: number; login: string; kind: 'spam' | 'ham'; message: Buffer; attempts: number }>(
      `UPDATE spam_training SET holder = $1, lease_until = now() + $3 * interval '1 millisecond'
        WHERE id IN (SELECT id FROM spam_training
                      WHERE due_at <= now() AND (lease_until IS NULL OR lease_until < now())
                      ORDER BY due_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)
        RETURNING id, login, kind, message, attempts`,
      [holder, max, leaseMs],
    );
    return r.rows.sort((a, b) => a.id - b.id);
  }

  async done(id: number): Promise<void> {
    await this.pg.query('DELETE FROM spam_training WHERE id = $1', [id]);
  }

  async retry(id: number, delayMs: number): Promise<void> {
    await this.pg.query(
      `UPDATE spam_training SET attempts = attempts + 1, due_at = now() + $2 * interval '1 millisecond', holder = NULL, lease_until = NULL WHERE id = $1`,
      [id, delayMs],
    );
  }

  async pending(): Promise<number> {
    return (await this.pg.query<{ n: number }>('SELECT count(*)::int8 AS n FROM spam_training')).rows[0].n;
  }

  async close(): Promise<void> {}
}

import { Column, Entity, PrimaryColumn } from 'typeorm';
import { WebhookEntity, WebhookSpace, WebhookState } from '../../lib/index.js';
import { ListenerMatchCache } from '../../lib/capture/listener-match.cache.js';
import { describeOnlyOn } from '../src/databases.js';
import { LogCollector } from '../src/log-collector.js';
import { freshSpace } from '../src/spaces.js';
import { createTestApp, HOST_ENTITIES } from '../src/test-app.js';

/** A key column that SQLite fills in as the row's id, which TypeORM does not report back. */
@Entity('capture_test_unkeyed')
@WebhookEntity({ name: 'Unkeyed', states: ['OPEN', 'CLOSED'] })
class Unkeyed {
  @PrimaryColumn({ type: 'integer' }) id: number;
  @WebhookSpace() @Column({ type: 'int' }) shop: number;
  @WebhookState() @Column({ type: 'varchar', length: 20 }) state: string;
}

describeOnlyOn('sqlite')('a change whose key TypeORM does not report, on SQLite', () => {
  it('is named in a warning also while the listeners of its space are known to be none', async () => {
    const logs = new LogCollector();
    const testApp = await createTestApp('sqlite', { logger: logs, hostEntities: [...HOST_ENTITIES, Unkeyed] });
    try {
      const space = freshSpace();
      const repository = testApp.dataSource.getRepository(Unkeyed);
      await repository.save({ id: 100_000, shop: space, state: 'OPEN' });
      expect(testApp.get(ListenerMatchCache).cachedListeners(space, 'Unkeyed')).toEqual([]);

      for (let i = 0; i < 2; i++) await repository.save({ shop: space, state: 'OPEN' } as Unkeyed);

      expect(logs.warnings).toEqual([
        'A change of Unkeyed without a primary key was not published',
        'A change of Unkeyed without a primary key was not published',
      ]);
    } finally {
      await testApp.close();
    }
  });
});

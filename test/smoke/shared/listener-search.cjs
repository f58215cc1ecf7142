// search() orders and pages listeners with their URL and identity joined, which must stay plain SQL on
// every TypeORM version (0.3.29 pages queries over joined entities its own way).
const assert = require('node:assert/strict');

async function assertSearchByNameDescending(listeners, spaceId, expectedIds) {
  const found = await listeners.search(spaceId, {
    filter: { type: 'LEAF', fieldName: 'url.url', operator: 'CONTAINS', value: '/' },
    orderBys: [{ fieldName: 'name', sorting: 'DESC' }],
    numberOfEntities: 10,
  });
  assert.deepEqual(
    found.map((listener) => listener.id),
    expectedIds,
  );
}

module.exports = { assertSearchByNameDescending };

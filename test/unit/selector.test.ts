import { test } from 'node:test';
import assert from 'node:assert/strict';
import { matchesSelector, parseSelector } from '../../src/plan/selector.js';

test('selectors: equality only, any key name, clear errors for the rest', () => {
  assert.deepEqual(parseSelector('tier=web,team==shop'), { selector: { tier: 'web', team: 'shop' } });
  assert.deepEqual(parseSelector('error=x'), { selector: { error: 'x' } });
  assert.deepEqual(parseSelector('app.kubernetes.io/name=pm'), { selector: { 'app.kubernetes.io/name': 'pm' } });
  for (const bad of ['tier!=web', 'tier', '=web', 'tier in (a,b)']) assert.ok('error' in parseSelector(bad), bad);
  assert.equal(matchesSelector({ tier: 'web', team: 'a' }, { tier: 'web' }), true);
  assert.equal(matchesSelector({ tier: 'web' }, { tier: 'db' }), false);
  assert.equal(matchesSelector({}, undefined), true);
});

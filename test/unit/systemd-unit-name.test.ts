// Unit names: systemd.unit(5)'s rules, each refusal naming the rule broken.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SystemdError } from '../../src/drivers/systemd/errors.js';
import { ownedUnitName, unitNameProblem, validateUnitName, validateUnitNames } from '../../src/drivers/systemd/unit-name.js';

test('valid names pass unchanged', () => {
  for (const name of ['pm-api.service', 'a.target', 'getty@tty1.service', 'x@a@b.service', 'dev-sda1.device', 'a:b_c.d\\x2d.socket', 'foo.timer', `${'a'.repeat(247)}.service`]) {
    assert.equal(validateUnitName(name), name);
  }
});

test('each broken rule is named', () => {
  const cases: Array<[unknown, RegExp]> = [
    ['', /empty/],
    ['pm-api', /no type suffix/],
    ['pm-api.exe', /"\.exe" is not a unit type/],
    ['.service', /before the type suffix is empty/],
    ['@x.service', /before '@' is empty/],
    ['getty@.service', /template .* with no instance/],
    ['pm api.service', /a space is not allowed/],
    ['pm-*.service', /"\*" is not allowed/],
    ['pm-[a].service', /"\[" is not allowed/],
    ['pm/x.service', /"\/" is not allowed/],
    ['pm-é.service', /"é" is not allowed/],
    ['pm-x\n.service', /control character U\+000A/],
    ['-pm.service', /begins with '-'/],
    ['x@a b.service', /not allowed in the instance/],
    [`${'a'.repeat(248)}.service`, /256 characters long; at most 255/],
    [42, /a string, not number/],
    [null, /not null/],
  ];
  for (const [name, rule] of cases) {
    assert.match(unitNameProblem(name) ?? 'valid', rule, JSON.stringify(name));
    assert.throws(
      () => validateUnitName(name),
      (error: unknown) => error instanceof SystemdError && error.code === 'E_SYSTEMD_UNIT_NAME' && rule.test(error.message) && error.hint !== undefined,
      JSON.stringify(name),
    );
  }
});

test('ownedUnitName and validateUnitNames', () => {
  assert.equal(ownedUnitName('api'), 'pm-api.service');
  assert.throws(() => ownedUnitName('a b'), /E_SYSTEMD_UNIT_NAME|a space/);
  assert.deepEqual(validateUnitNames(['a.service', 'b.service', 'a.service']), ['a.service', 'b.service']);
  assert.throws(() => validateUnitNames(['a.service', 'b c.service']), /b c\.service/);
});

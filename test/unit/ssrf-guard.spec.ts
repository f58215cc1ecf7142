import { nonPublicRange, SsrfGuard, WebhookAddressRefusedError } from '../../lib/security/ssrf-guard.js';

describe('nonPublicRange', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.0.9', 'loopback'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['192.168.1.1', 'private'],
    ['169.254.169.254', 'linkLocal'],
    ['100.64.0.1', 'carrierGradeNat'],
    ['0.0.0.0', 'unspecified'],
    ['224.0.0.1', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    ['240.0.0.1', 'reserved'],
    ['::1', 'loopback'],
    ['::', 'unspecified'],
    ['fc00::1', 'uniqueLocal'],
    ['fd12:3456::1', 'uniqueLocal'],
    ['fe80::1', 'linkLocal'],
    ['ff02::1', 'multicast'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:10.0.0.1', 'private'],
    ['::ffff:169.254.169.254', 'linkLocal'],
    ['64:ff9b::7f00:1', 'loopback'],
    ['64:ff9b::a00:1', 'private'],
    ['64:ff9b:1:a9fe:a9:fe00:808:808', 'reserved'],
    ['64:ff9b:1::808:808', 'reserved'],
    ['::7f00:1', 'reserved'],
    ['::127.0.0.1', 'reserved'],
    ['::a9fe:a9fe', 'reserved'],
    ['::8.8.8.8', 'reserved'],
    ['::808:808', 'reserved'],
    ['0:0:0:0:0:0:10.0.0.1', 'reserved'],
    ['::1:0:0:1', 'reserved'],
    ['ff::1', 'reserved'],
    ['not an address', 'invalid'],
  ])('refuses %s (%s)', (address, range) => {
    expect(nonPublicRange(address)).toBe(range);
  });

  it.each(['93.184.216.34', '8.8.8.8', '1.1.1.1', '2606:4700:4700::1111', '::ffff:8.8.8.8', '64:ff9b::808:808'])(
    'allows the public address %s',
    (address) => {
      expect(nonPublicRange(address)).toBeNull();
    },
  );
});

describe('SsrfGuard', () => {
  const strict = new SsrfGuard({ allowPrivateNetworks: false, allowedHosts: ['internal.example'] });

  it('checks IP literals, with or without brackets', () => {
    expect(() => strict.checkLiteral('127.0.0.1')).toThrow(WebhookAddressRefusedError);
    expect(() => strict.checkLiteral('[::ffff:127.0.0.1]')).toThrow(WebhookAddressRefusedError);
    expect(() => strict.checkLiteral('[::1]')).toThrow(WebhookAddressRefusedError);
    expect(() => strict.checkLiteral('8.8.8.8')).not.toThrow();
    expect(() => strict.checkLiteral('example.com')).not.toThrow();
  });

  it.each(['localhost', 'LOCALHOST.', 'foo.localhost', 'a.b.Localhost'])('refuses %s, loopback by definition, without a lookup', (host) => {
    expect(() => strict.checkLiteral(host)).toThrow(WebhookAddressRefusedError);
    expect(() => strict.checkLiteral(host)).toThrow(`${host} resolves to 127.0.0.1 or ::1 (loopback)`);
    expect(() => new SsrfGuard({ allowPrivateNetworks: false, allowedHosts: [host] }).checkLiteral(host)).not.toThrow();
    expect(() => new SsrfGuard({ allowPrivateNetworks: true, allowedHosts: [] }).checkLiteral(host)).not.toThrow();
  });

  it.each(['localhost.example.com', 'notlocalhost', 'localhost-x.example'])('leaves %s to the check at connect time', (host) => {
    expect(() => strict.checkLiteral(host)).not.toThrow();
  });

  it('exempts an IPv6 address listed with or without brackets, in any of its forms', () => {
    for (const listed of ['::1', '[::1]', '0:0:0:0:0:0:0:1']) {
      const guard = new SsrfGuard({ allowPrivateNetworks: false, allowedHosts: [listed] });
      expect(() => guard.checkLiteral(new URL('http://[0::1]:3000/hook').hostname)).not.toThrow();
      expect(() => guard.checkLiteral('[::2]')).toThrow(WebhookAddressRefusedError);
    }
  });

  it('refuses IPv4-compatible literals as the URL parser writes them', () => {
    expect(new URL('http://[::127.0.0.1]/x').hostname).toBe('[::7f00:1]');
    expect(() => strict.checkLiteral(new URL('http://[::127.0.0.1]/x').hostname)).toThrow(WebhookAddressRefusedError);
    expect(() => strict.checkLiteral('[::a9fe:a9fe]')).toThrow(WebhookAddressRefusedError);
  });

  // Node's resolver reports an IPv4-compatible answer with a dotted tail, as in the last two.
  it.each(['::7f00:1', '::a9fe:a9fe', '::127.0.0.1', '::8.8.8.8'])(
    'refuses the IPv4-compatible address %s at lookup time',
    async (address) => {
      const error = await new Promise((resolve) => strict.lookup(address, { all: true }, (e) => resolve(e)));
      expect(error).toBeInstanceOf(WebhookAddressRefusedError);
      expect((error as WebhookAddressRefusedError).range).toBe('reserved');
    },
  );

  it('refuses a name that resolves to a loopback address at lookup time', async () => {
    const error = await new Promise((resolve) => strict.lookup('localhost', { all: true }, (e) => resolve(e)));
    expect(error).toBeInstanceOf(WebhookAddressRefusedError);
    expect((error as WebhookAddressRefusedError).host).toBe('localhost');
  });

  it('lets allowed hosts and, when configured, every private address through', async () => {
    const relaxed = new SsrfGuard({ allowPrivateNetworks: true, allowedHosts: [] });
    expect(() => relaxed.checkLiteral('10.0.0.1')).not.toThrow();
    const addresses = await new Promise((resolve, reject) =>
      relaxed.lookup('localhost', { all: true }, (e, a) => (e ? reject(e) : resolve(a))),
    );
    expect(addresses).toEqual(
      expect.arrayContaining([expect.objectContaining({ address: expect.stringMatching(/^(127\.0\.0\.1|::1)$/) })]),
    );
    const allowed = new SsrfGuard({ allowPrivateNetworks: false, allowedHosts: ['localhost'] });
    const single = await new Promise((resolve, reject) => allowed.lookup('localhost', {}, (e, a) => (e ? reject(e) : resolve(a))));
    expect(single).toMatch(/^(127\.0\.0\.1|::1)$/);
  });
});

import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import type { ResolvedWebhookOptions } from '../module/webhook-options.interface.js';

/** A delivery the SSRF guard stopped before anything was sent. */
export class WebhookAddressRefusedError extends Error {
  readonly code = 'WEBHOOK_ADDRESS_REFUSED';

  constructor(
    readonly host: string,
    readonly address: string,
    readonly range: string,
  ) {
    super(
      `${host} resolves to ${address} (${range}), which is not a public address; allow it with security.allowedHosts or security.allowPrivateNetworks`,
    );
    this.name = 'WebhookAddressRefusedError';
  }
}

const NAT64_WELL_KNOWN = ipaddr.IPv6.parseCIDR('64:ff9b::/96');
const NAT64_LOCAL_USE = ipaddr.IPv6.parseCIDR('64:ff9b:1::/48');
/**
 * The IETF-reserved `::/8`. ipaddr.js names only part of it (`::`, `::1`, IPv4-mapped, rfc6145) and
 * calls the rest unicast, among it the deprecated IPv4-compatible `::/96` (`::7f00:1` is 127.0.0.1).
 */
const IPV6_RESERVED_BLOCK = ipaddr.IPv6.parseCIDR('::/8');

/**
 * Parses an address. ipaddr.js reads the deprecated `::a.b.c.d` as `::ffff:a.b.c.d`, while Node's
 * resolver writes IPv4-compatible addresses that way (`::127.0.0.1` for `::7f00:1`); `0::a.b.c.d`,
 * the same address, it reads right.
 */
function parseAddress(address: string): ipaddr.IPv4 | ipaddr.IPv6 {
  return ipaddr.parse(address.replace(/^::(?=\d+\.)/, '0::'));
}

/** The range of an address when it is not public unicast, else `null`. */
export function nonPublicRange(address: string): string | null {
  if (!ipaddr.isValid(address)) return 'invalid';
  let parsed = parseAddress(address);
  if (parsed.kind() === 'ipv6') {
    const v6 = parsed as ipaddr.IPv6;
    // Addresses that embed an IPv4 address are judged by it: IPv4-mapped (::ffff:a.b.c.d) and NAT64 (64:ff9b::/96).
    if (v6.isIPv4MappedAddress()) parsed = v6.toIPv4Address();
    else if (v6.match(NAT64_WELL_KNOWN)) parsed = ipaddr.fromByteArray(v6.toByteArray().slice(12));
    // A NAT64 prefix of the local network's own (RFC 8215), which places the IPv4 address elsewhere: not public.
    else if (v6.match(NAT64_LOCAL_USE)) return 'reserved';
  }
  const range = parsed.range();
  if (range !== 'unicast') return range;
  return parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).match(IPV6_RESERVED_BLOCK) ? 'reserved' : null;
}

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/** `localhost` or a name under it, written in any case and with or without the root's trailing dot. */
function isLocalhostName(host: string): boolean {
  return /(^|\.)localhost\.?$/i.test(host);
}

/** A host without the brackets a URL puts around an IPv6 address. */
function withoutBrackets(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/**
 * A host as a URL's host name writes it, without the brackets of an IPv6 address: names in lower
 * case, IPv6 addresses in their shortest form (`[0:0::1]` and `::1` are both `::1`).
 */
export function comparableHost(host: string): string {
  const bare = withoutBrackets(host);
  return isIP(bare) === 6 ? new URL(`http://[${bare}]`).hostname.slice(1, -1) : bare.toLowerCase();
}

/** Why an `allowedHosts` entry could never equal a URL's host, or `null` when it could. */
export function unmatchableHostReason(host: string): string | null {
  const bare = withoutBrackets(host);
  if (bare.includes('%')) return 'names a network interface (%zone), which a URL cannot hold';
  if (isIP(bare) !== 0) return null;
  const label = '[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?';
  if (bare.length > 253 || !new RegExp(`^${label}(?:\\.${label})*\\.?$`, 'i').test(bare)) {
    return 'must be a host name or an IP address alone: no scheme, port, path or pattern';
  }
  // A URL writes some names otherwise: "0x7f.1" and "10.1.2" are the IPv4 addresses 127.0.0.1 and 10.1.0.2.
  const written = URL.canParse(`http://${bare}/`) ? new URL(`http://${bare}/`).hostname : null;
  if (written === null) return 'is no host a URL can hold';
  return written === bare.toLowerCase() ? null : `is written ${written} in a URL; list it so`;
}

/**
 * Decides, per host, whether deliveries may connect to it, and gives undici a `lookup` that
 * resolves a name once, checks every address, and hands back only checked ones: the connection
 * goes to the address that was checked, so a second DNS answer cannot sneak in another one.
 */
export class SsrfGuard {
  private readonly allowedHosts: ReadonlySet<string>;

  constructor(private readonly options: ResolvedWebhookOptions['security']) {
    this.allowedHosts = new Set(options.allowedHosts.map(comparableHost));
  }

  static fromOptions(options: ResolvedWebhookOptions): SsrfGuard {
    return new SsrfGuard(options.security);
  }

  /** Whether a host skips the address check. */
  isExempt(host: string): boolean {
    return this.options.allowPrivateNetworks || this.allowedHosts.has(comparableHost(host));
  }

  /**
   * Checks a host whose addresses are known without a lookup: an IP literal, or `localhost` and the
   * names under it, which are loopback by definition (RFC 6761). Other names are checked at connect time.
   */
  checkLiteral(host: string): void {
    const address = withoutBrackets(host);
    const literal = isIP(address) !== 0;
    // Before the exemption, which every request's other names would otherwise compute for nothing.
    if ((!literal && !isLocalhostName(host)) || this.isExempt(host)) return;
    if (!literal) throw new WebhookAddressRefusedError(host, '127.0.0.1 or ::1', 'loopback');
    const range = nonPublicRange(address);
    if (range) throw new WebhookAddressRefusedError(host, address, range);
  }

  /** A `dns.lookup` replacement for net/tls connect. */
  readonly lookup = (hostname: string, options: { all?: boolean } | number | undefined, callback: LookupCallback): void => {
    dnsLookup(hostname, { all: true }, (error, addresses) => {
      if (error) return callback(error, []);
      if (!this.isExempt(hostname)) {
        for (const { address } of addresses) {
          const range = nonPublicRange(address);
          if (range) return callback(new WebhookAddressRefusedError(hostname, address, range) as NodeJS.ErrnoException, []);
        }
      }
      if (typeof options === 'object' && options?.all) return callback(null, addresses);
      return callback(null, addresses[0].address, addresses[0].family);
    });
  };
}

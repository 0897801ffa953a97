/**
 * Certificates as diagnose sees them: Node's `crypto.X509Certificate` for everything it offers
 * (names, validity, fingerprints, checkIssued, verify, checkHost) and @peculiar/asn1-x509 only for
 * the three fields Node 20 does not expose (signature algorithm, authority and subject key ids),
 * so no X.509 structure is parsed by hand here.
 */
import { X509Certificate } from 'node:crypto';
import { createRequire } from 'node:module';
import type * as Asn1Schema from '@peculiar/asn1-schema';
import type * as Asn1X509 from '@peculiar/asn1-x509';

// Loaded on the first certificate parsed, not at import: the ASN.1 libraries take ~55 ms to load,
// and every command that imports the modules (validate, --help of a task) would pay it otherwise.
let asn1: { schema: typeof Asn1Schema; x509: typeof Asn1X509 } | undefined;
function asn1Libs(): { schema: typeof Asn1Schema; x509: typeof Asn1X509 } {
  if (!asn1) {
    const require = createRequire(import.meta.url);
    asn1 = {
      schema: require('@peculiar/asn1-schema') as typeof Asn1Schema,
      x509: require('@peculiar/asn1-x509') as typeof Asn1X509,
    };
  }
  return asn1;
}

/** A parsed certificate with the fields Node does not expose. */
export interface Cert {
  x509: X509Certificate;
  /** Signature algorithm OID and its name where known (e.g. `ecdsa-with-SHA1`). */
  signatureOid: string;
  signatureName: string;
  /** Authority / subject key identifiers, lower-case hex with colons, when present. */
  aki?: string;
  ski?: string;
  /** Whether the certificate has a subjectAltName extension at all (Go ignores the CN when it does). */
  hasSan: boolean;
}

// The SHA-1 based signature algorithms Go (>= 1.18, and the Go 1.19 of Debian's containerd 1.6)
// refuses in a chain: RSA, ECDSA and DSA with SHA-1.
const SHA1_OIDS: Record<string, string> = {
  '1.2.840.113549.1.1.5': 'sha1WithRSAEncryption',
  '1.2.840.10045.4.1': 'ecdsa-with-SHA1',
  '1.2.840.10040.4.3': 'dsa-with-sha1',
  '1.3.14.3.2.29': 'sha1WithRSASignature',
};
const OTHER_OIDS: Record<string, string> = {
  '1.2.840.113549.1.1.11': 'sha256WithRSAEncryption',
  '1.2.840.113549.1.1.12': 'sha384WithRSAEncryption',
  '1.2.840.113549.1.1.13': 'sha512WithRSAEncryption',
  '1.2.840.113549.1.1.10': 'rsassa-pss',
  '1.2.840.10045.4.3.2': 'ecdsa-with-SHA256',
  '1.2.840.10045.4.3.3': 'ecdsa-with-SHA384',
  '1.2.840.10045.4.3.4': 'ecdsa-with-SHA512',
  '1.3.101.112': 'Ed25519',
  '1.2.840.113549.1.1.4': 'md5WithRSAEncryption',
};

const hex = (b: ArrayBuffer): string =>
  Buffer.from(b)
    .toString('hex')
    .replace(/(..)(?=.)/g, '$1:');

/** Parses one DER certificate. */
export function parseCert(der: Buffer): Cert {
  return certOf(new X509Certificate(der));
}

/**
 * A Cert whose ASN.1-derived fields (signature algorithm, key ids, SAN presence) are read when
 * first asked for: an OS store has ~140 certificates, of which a chain evaluation looks at a few,
 * and reading them all cost ~0.5 s of CPU (the JS ASN.1 parser) on a first run's pre-flight.
 */
function certOf(x509: X509Certificate): Cert {
  let f: Omit<Cert, 'x509'> | undefined;
  const fields = (): Omit<Cert, 'x509'> => (f ??= asn1Fields(x509));
  return {
    x509,
    get signatureOid() {
      return fields().signatureOid;
    },
    get signatureName() {
      return fields().signatureName;
    },
    get aki() {
      return fields().aki;
    },
    get ski() {
      return fields().ski;
    },
    get hasSan() {
      return fields().hasSan;
    },
  };
}

function asn1Fields(x509: X509Certificate): Omit<Cert, 'x509'> {
  try {
    return parseFields(x509.raw);
  } catch {
    // OpenSSL took it and the ASN.1 reader does not: what OpenSSL itself knows, no key ids.
    return { signatureOid: 'unknown', signatureName: 'unknown', hasSan: x509.subjectAltName !== undefined };
  }
}

function parseFields(der: Buffer): Omit<Cert, 'x509'> {
  const {
    schema: { AsnConvert },
    x509: {
      AuthorityKeyIdentifier,
      Certificate,
      SubjectKeyIdentifier,
      id_ce_authorityKeyIdentifier,
      id_ce_subjectAltName,
      id_ce_subjectKeyIdentifier,
    },
  } = asn1Libs();
  const asn = AsnConvert.parse(der, Certificate);
  const signatureOid = asn.signatureAlgorithm.algorithm;
  const ext = asn.tbsCertificate.extensions ?? [];
  const find = (oid: string) => ext.find((e) => e.extnID === oid)?.extnValue.buffer;
  const akiRaw = find(id_ce_authorityKeyIdentifier);
  const skiRaw = find(id_ce_subjectKeyIdentifier);
  const aki = akiRaw ? AsnConvert.parse(akiRaw, AuthorityKeyIdentifier).keyIdentifier?.buffer : undefined;
  const ski = skiRaw ? AsnConvert.parse(skiRaw, SubjectKeyIdentifier).buffer : undefined;
  return {
    signatureOid,
    signatureName: SHA1_OIDS[signatureOid] ?? OTHER_OIDS[signatureOid] ?? signatureOid,
    ...(aki ? { aki: hex(aki) } : {}),
    ...(ski ? { ski: hex(ski) } : {}),
    hasSan: find(id_ce_subjectAltName) !== undefined,
  };
}

/** Whether the certificate is signed with a SHA-1 based algorithm. */
export function isSha1(c: Cert): boolean {
  return c.signatureOid in SHA1_OIDS;
}

// A run parses the same certificates for every host (the task's CA, the OS store, the served
// chain): each PEM block is parsed once per process (null: OpenSSL refused it). Bounded.
const parsedBlocks = new Map<string, Cert | null>();
const MAX_PARSED_BLOCKS = 4096;

/** Every certificate in a PEM bundle (text outside the blocks is ignored, as Go's AppendCertsFromPEM does). */
export function certsFromPem(pem: string): Cert[] {
  const out: Cert[] = [];
  for (const m of pem.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)) {
    let cert = parsedBlocks.get(m[0]);
    if (cert === undefined) {
      try {
        cert = certOf(new X509Certificate(m[0]));
      } catch {
        // Go skips a block it cannot parse; so does the trust store it models.
        cert = null;
      }
      if (parsedBlocks.size >= MAX_PARSED_BLOCKS) parsedBlocks.clear();
      parsedBlocks.set(m[0], cert);
    }
    if (cert) out.push(cert);
  }
  return out;
}

/**
 * Whether `c` is self-issued and its signature verifies with its own key. By names and signature,
 * not checkIssued: OpenSSL's issuer check also wants keyCertSign, which a self-signed leaf lacks.
 */
export function isSelfSigned(c: Cert): boolean {
  return c.x509.subject === c.x509.issuer && safeVerify(c.x509, c.x509);
}

/** Whether `issuer`'s key verifies `c`'s signature (false instead of a throw for odd keys). */
export function safeVerify(c: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return c.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/** The evidence diagnose reports for one certificate. */
export interface CertEvidence {
  subject: string;
  issuer: string;
  san: string[];
  not_before: string;
  not_after: string;
  sha256: string;
  signature: string;
  ca: boolean;
  aki?: string;
  ski?: string;
}

/** `subject=...` lines of Node as one line, `CN=a, O=b`. */
function oneLine(dn: string): string {
  return dn.split('\n').filter(Boolean).join(', ');
}

/** The evidence of one certificate, as reported in human and JSON output. */
export function evidenceOf(c: Cert): CertEvidence {
  const x = c.x509;
  return {
    subject: oneLine(x.subject),
    issuer: oneLine(x.issuer),
    san: (x.subjectAltName ?? '')
      .split(', ')
      .filter(Boolean)
      .map((s) => s.trim()),
    not_before: new Date(x.validFrom).toISOString(),
    not_after: new Date(x.validTo).toISOString(),
    sha256: `sha256:${x.fingerprint256.replace(/:/g, '').toLowerCase()}`,
    signature: c.signatureName,
    ca: x.ca,
    ...(c.aki ? { aki: c.aki } : {}),
    ...(c.ski ? { ski: c.ski } : {}),
  };
}

import { describe, expect, it } from 'vitest';
import { maskedText } from './mask.js';

describe('maskedText', () => {
  it('masks docker/kubelet auth values but keeps registry keys', () => {
    const json =
      '{\n  "auths": {\n    "registry.test:5000": { "auth": "dXNlcjpzM2NyZXQ=" },\n    "other.example": {"auth":"b3RoZXI6cHc=", "identitytoken": "tok-123"}\n  }\n}\n';
    const out = maskedText(Buffer.from(json));
    expect(out).not.toMatch(/dXNlcjpzM2NyZXQ=|b3RoZXI6cHc=|tok-123/);
    expect(out).toContain('"registry.test:5000": { "auth": "********" }');
    expect(out).toContain('"auths": {');
  });
  it('masks TOML auth tables and private keys, keeps the rest', () => {
    const toml =
      '[plugins."io.containerd.grpc.v1.cri".registry.configs."registry.test".auth]\n  username = "bob"\n  password = \'hunter2\'\n  auth = ""\n';
    const out = maskedText(Buffer.from(toml));
    expect(out).toContain("password = '********'");
    expect(out).toContain('username = "bob"');
    expect(out).toContain('auth = ""');
    const key = '-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB\n-----END EC PRIVATE KEY-----\n';
    expect(maskedText(Buffer.from(key))).toBe(
      '-----BEGIN EC PRIVATE KEY-----\n********\n-----END EC PRIVATE KEY-----\n',
    );
  });
  it('summarises binary and absent files', () => {
    expect(maskedText(Buffer.from([0, 1, 2]))).toBe('(binary, 3 bytes)\n');
    expect(maskedText(null)).toBe('(absent)\n');
  });
});

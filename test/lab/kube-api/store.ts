import { randomUUID } from 'node:crypto';
import { clone, type JsonObject } from './json-patch.js';
import { decodeServiceAccount, meta, namespaceObject } from './objects.js';

/** Initial content: namespaces, each with ServiceAccounts and their imagePullSecrets. */
export type SeedNamespaces = Record<string, { serviceAccounts: Record<string, { imagePullSecrets?: string[] }> }>;

/** The emulator's whole state; tests may read it, and change it through {@link KubeStore.mutate}. */
export class KubeStore {
  /** Last resourceVersion handed out; one counter for every object, like etcd's revision. */
  revision = 0;
  readonly namespaces = new Map<string, JsonObject>();
  /** namespace → name → ServiceAccount. */
  readonly serviceAccounts = new Map<string, Map<string, JsonObject>>();

  constructor(seed: SeedNamespaces = {}) {
    for (const [ns, content] of Object.entries(seed)) {
      this.addNamespace(ns);
      for (const [name, sa] of Object.entries(content.serviceAccounts)) {
        const body: JsonObject = { metadata: { name } };
        if (sa.imagePullSecrets !== undefined) body.imagePullSecrets = sa.imagePullSecrets.map((s) => ({ name: s }));
        this.insertServiceAccount(ns, body);
      }
    }
  }

  /** Hands out the next resourceVersion, as a string like the real API. */
  nextResourceVersion(): string {
    this.revision += 1;
    return String(this.revision);
  }

  /** Adds a namespace (idempotent). */
  addNamespace(name: string): JsonObject {
    const existing = this.namespaces.get(name);
    if (existing !== undefined) return existing;
    const ns = namespaceObject(name, randomUUID(), this.nextResourceVersion(), timestamp());
    this.namespaces.set(name, ns);
    this.serviceAccounts.set(name, new Map());
    return ns;
  }

  /** Stores a new ServiceAccount, filling the system fields; the caller checked the namespace exists and the name is free. */
  insertServiceAccount(namespace: string, body: JsonObject): JsonObject {
    const { object } = decodeServiceAccount(body);
    const m = meta(object);
    const stored: JsonObject = {
      kind: 'ServiceAccount',
      apiVersion: 'v1',
      ...object,
      metadata: {
        ...m,
        namespace,
        uid: randomUUID(),
        resourceVersion: this.nextResourceVersion(),
        creationTimestamp: timestamp(),
      },
    };
    const map = this.serviceAccounts.get(namespace);
    if (map === undefined) throw new Error(`namespace ${namespace} does not exist`);
    const out = canonical(stored);
    map.set(String(m.name), out);
    return out;
  }

  /** The stored ServiceAccount (live object: do not modify it outside {@link mutate}). */
  getServiceAccount(namespace: string, name: string): JsonObject | undefined {
    return this.serviceAccounts.get(namespace)?.get(name);
  }

  /** Replaces a stored ServiceAccount with `next`, bumping its resourceVersion. */
  replaceServiceAccount(namespace: string, name: string, next: JsonObject): JsonObject {
    const copy = clone(next);
    meta(copy).resourceVersion = this.nextResourceVersion();
    const stored = canonical(copy);
    this.serviceAccounts.get(namespace)?.set(name, stored);
    return stored;
  }

  /**
   * Edits a ServiceAccount as a concurrent writer would (another controller, a colleague's kubectl):
   * `fn` changes a copy, and the result is stored with a new resourceVersion.
   */
  mutate(
    namespace: string,
    name: string,
    fn: (sa: { imagePullSecrets?: { name: string }[] } & JsonObject) => void,
  ): JsonObject {
    const current = this.getServiceAccount(namespace, name);
    if (current === undefined) throw new Error(`serviceaccount ${namespace}/${name} does not exist in the emulator`);
    const copy = clone(current);
    fn(copy as { imagePullSecrets?: { name: string }[] } & JsonObject);
    const { object } = decodeServiceAccount(copy);
    return this.replaceServiceAccount(namespace, name, { ...object, metadata: meta(current) });
  }

  /** Plain JSON copy of the whole state, for assertions and the lab's control endpoint. */
  snapshot(): { revision: number; namespaces: Record<string, { serviceAccounts: Record<string, JsonObject> }> } {
    const namespaces: Record<string, { serviceAccounts: Record<string, JsonObject> }> = {};
    for (const [ns, sas] of this.serviceAccounts) {
      namespaces[ns] = { serviceAccounts: Object.fromEntries([...sas].map(([n, o]) => [n, clone(o)])) };
    }
    return { revision: this.revision, namespaces };
  }
}

/** RFC 3339 in seconds, as metav1.Time serialises. */
export function timestamp(d = new Date()): string {
  return `${d.toISOString().slice(0, 19)}Z`;
}

/** Canonical stored form: typed fields only, Go struct key order (so the wire JSON reads like the real server's). */
export function canonical(o: JsonObject): JsonObject {
  const { object } = decodeServiceAccount({ ...o, kind: 'ServiceAccount', apiVersion: 'v1' });
  return object;
}

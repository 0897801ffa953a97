# Removes one registry's entry from a docker-format config.json (auths), keeping the others, the
# file's mode and owner; writes atomically. Prints "changed" or "ok". argv: path registry check|apply
import json, os, sys, tempfile

path, registry, mode = sys.argv[1:4]
try:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
except FileNotFoundError:
    print("ok")
    sys.exit(0)
auths = data.get("auths") or {}
forms = {registry, "https://" + registry, "http://" + registry}
drop = [k for k in auths if k.rstrip("/") in forms or k.removesuffix("/v1/") in forms]
if not drop:
    print("ok")
    sys.exit(0)
if mode == "apply":
    for k in drop:
        del auths[k]
    st = os.stat(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".config.json.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent="\t")
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, st.st_mode & 0o7777)
    os.chown(tmp, st.st_uid, st.st_gid)
    os.replace(tmp, path)
print("changed")

#!/usr/bin/python
"""Back up and restore Nuxeo's binaries between the binary bucket and the backup bucket (S3, SigV4).

The backup bucket keeps one copy of each binary in a pool (`binaries/<key>`: Nuxeo names a binary by its
digest, so a pool needs no per-backup copy) and one manifest per backup (`manifests/<id>.json`): every key of
the binary bucket at backup time with its size and md5.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nx_s3_objects
short_description: Copy Nuxeo's binaries to a backup bucket with a manifest, and back
description:
  - O(state=backup) copies every object of the binary bucket missing from the pool (or of another size or md5)
    to C(<pool_prefix><key>) of the backup bucket, and writes the manifest (keys, sizes, md5) to
    C(<manifest_prefix><backup_id>.json), merged with O(manifest).
  - O(state=restore) reads that manifest and copies back every listed object that is missing or differs in
    the binary bucket, checking each md5. Objects not in the manifest are left alone.
  - O(state=manifest) only reads the manifest; O(state=record) writes O(manifest) as the backup's manifest.
  - O(state=verify) reads the manifest and checks, changing nothing, that every object it lists is in the pool
    with its size and md5; it fails on the first missing manifest or on any missing or different object.
  - O(state=expire) deletes the manifests whose database backup set is not in O(kept_sets) (pgBackRest expired
    it), never O(backup_id)'s; returns their ids in RV(expired).
options:
  source_endpoint: {description: Endpoint of the binary bucket., type: str, required: true}
  source_bucket: {description: Nuxeo's binary bucket., type: str, required: true}
  backup_endpoint: {description: Endpoint of the backup bucket., type: str, required: true}
  backup_bucket: {description: Backup bucket., type: str, required: true}
  region: {description: Region used in the signatures., type: str, default: us-east-1}
  access_key: {description: Access key id., type: str, required: true, no_log: true}
  secret_key: {description: Secret access key., type: str, required: true, no_log: true}
  backup_id: {description: Backup id (manifest name)., type: str, required: true}
  pool_prefix: {description: Prefix of the binaries' pool., type: str, default: binaries/}
  manifest_prefix: {description: Prefix of the manifests., type: str, default: manifests/}
  manifest: {description: More manifest fields written with a backup., type: dict, default: {}}
  state:
    description: What to do.
    type: str
    choices: [backup, restore, manifest, record, verify, expire]
    default: backup
  kept_sets:
    description: With O(state=expire), the labels of the backup sets the pgBackRest repository still holds.
    type: list
    elements: str
    default: []
  timeout: {description: Seconds per request., type: int, default: 120}
  ca_file:
    description: CA certificate (PEM, on the host) trusted for https endpoints besides the system's CAs.
    type: path
    default: ""
author: nxprovision
"""

EXAMPLES = r"""
- name: Copy the binaries
  nx_s3_objects:
    source_endpoint: http://10.0.0.5:8333
    source_bucket: nuxeo-binaries
    backup_endpoint: http://10.0.0.5:8333
    backup_bucket: nuxeo-binaries-backup
    access_key: "{{ nx_secret_s3_access_key }}"
    secret_key: "{{ nx_secret_s3_secret_key }}"
    backup_id: 20261125-223000
  no_log: true
"""

RETURN = r"""
manifest: {description: The backup's manifest., type: dict, returned: always}
copied: {description: Objects copied., type: int, returned: always}
bytes_copied: {description: Bytes copied., type: int, returned: always}
expired: {description: Ids of the manifests deleted (O(state=expire))., type: list, returned: always}
"""

import datetime
import json

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.nx_s3 import S3, S3Error, expired_manifests, md5_of, needs_copy, pool_problems


def backup(src, dst, p, check):
    pool = {o["key"][len(p["pool_prefix"]):]: o for o in dst.list(p["backup_bucket"], p["pool_prefix"])}
    objects, copied, nbytes = [], 0, 0
    for obj in src.list(p["source_bucket"]):
        md5 = md5_of(str(obj["etag"]))
        if needs_copy(obj, pool.get(obj["key"]), md5) or md5 is None:
            if check:
                copied += 1
                continue
            got = dst.copy(src, p["source_bucket"], obj["key"], p["backup_bucket"], p["pool_prefix"] + obj["key"])
            if got["size"] != obj["size"]:
                raise S3Error(f"{obj['key']}: listed with {obj['size']} bytes, read {got['size']}")
            md5 = got["md5"]
            copied += 1
            nbytes += got["size"]
        objects.append({"key": obj["key"], "size": obj["size"], "md5": md5})
    manifest = dict(p["manifest"])
    manifest.update({
        "id": p["backup_id"],
        "binaries": {"bucket": p["source_bucket"], "endpoint": p["source_endpoint"],
                     "backup_bucket": p["backup_bucket"], "pool_prefix": p["pool_prefix"],
                     "count": len(objects), "bytes": sum(o["size"] for o in objects), "objects": objects,
                     "copied": copied, "finished": datetime.datetime.now(datetime.UTC).isoformat()},
    })
    if not check:
        dst.put_bytes(p["backup_bucket"], p["manifest_prefix"] + p["backup_id"] + ".json",
                      json.dumps(manifest, indent=1, sort_keys=True).encode())
    return manifest, copied, nbytes


def read_manifest(dst, p):
    raw = dst.get_bytes(p["backup_bucket"], p["manifest_prefix"] + p["backup_id"] + ".json")
    if raw is None:
        raise S3Error(f"no manifest {p['manifest_prefix']}{p['backup_id']}.json in bucket {p['backup_bucket']}")
    return json.loads(raw)


def restore(src, dst, p, check):
    manifest = read_manifest(dst, p)
    copied, nbytes, missing = 0, 0, []
    for obj in manifest["binaries"]["objects"]:
        have = src.head(p["source_bucket"], obj["key"])
        if not needs_copy(obj, have, obj["md5"]):
            continue
        if check:
            copied += 1
            continue
        pooled = p["pool_prefix"] + obj["key"]
        if dst.head(p["backup_bucket"], pooled) is None:
            missing.append(obj["key"])
            continue
        got = src.copy(dst, p["backup_bucket"], pooled, p["source_bucket"], obj["key"])
        if got["md5"] != obj["md5"] or got["size"] != obj["size"]:
            raise S3Error(f"{obj['key']}: the pool's copy has md5 {got['md5']} ({got['size']} bytes), the manifest "
                          f"says {obj['md5']} ({obj['size']} bytes)")
        copied += 1
        nbytes += got["size"]
    if missing:
        raise S3Error(f"{len(missing)} binaries of the manifest are not in the pool: {', '.join(missing[:5])}")
    return manifest, copied, nbytes


def verify(dst, p):
    manifest = read_manifest(dst, p)
    objects = manifest.get("binaries", {}).get("objects")
    if not manifest.get("complete") or objects is None:
        raise S3Error(f"manifest {p['backup_id']} is incomplete (the backup did not finish)")
    pooled = {str(o["key"]): dst.head(p["backup_bucket"], p["pool_prefix"] + str(o["key"])) for o in objects}
    bad = pool_problems(objects, pooled)
    if bad:
        raise S3Error(f"{len(bad)} of the {len(objects)} binaries of manifest {p['backup_id']} are not in the pool as "
                      f"recorded: {', '.join(bad[:5])}")
    return manifest


def expire(dst, p, check):
    prefix = p["manifest_prefix"]
    manifests = {}
    for obj in dst.list(p["backup_bucket"], prefix):
        key = str(obj["key"])
        if key.endswith(".json") and "/" not in key[len(prefix):]:
            try:
                manifests[key[len(prefix):-5]] = json.loads(dst.get_bytes(p["backup_bucket"], key) or b"{}")
            except ValueError:
                continue  # not a manifest of ours: left alone
    gone = expired_manifests(manifests, p["kept_sets"], p["backup_id"])
    if not check:
        for backup_id in gone:
            dst.delete(p["backup_bucket"], prefix + backup_id + ".json")
    return gone


def main():
    module = AnsibleModule(
        argument_spec={
            "source_endpoint": {"type": "str", "required": True},
            "source_bucket": {"type": "str", "required": True},
            "backup_endpoint": {"type": "str", "required": True},
            "backup_bucket": {"type": "str", "required": True},
            "region": {"type": "str", "default": "us-east-1"},
            "access_key": {"type": "str", "required": True, "no_log": True},
            "secret_key": {"type": "str", "required": True, "no_log": True},
            "backup_id": {"type": "str", "required": True},
            "pool_prefix": {"type": "str", "default": "binaries/"},
            "manifest_prefix": {"type": "str", "default": "manifests/"},
            "manifest": {"type": "dict", "default": {}},
            "state": {"type": "str", "default": "backup",
                      "choices": ["backup", "restore", "manifest", "record", "verify", "expire"]},
            "kept_sets": {"type": "list", "elements": "str", "default": []},
            "timeout": {"type": "int", "default": 120},
            "ca_file": {"type": "path", "default": ""},
        },
        supports_check_mode=True,
    )
    p = module.params
    keys = (p["region"], p["access_key"], p["secret_key"], p["timeout"], p["ca_file"])
    src = S3(p["source_endpoint"], *keys)
    dst = S3(p["backup_endpoint"], *keys)
    expired = []
    try:
        if p["state"] == "backup":
            manifest, copied, nbytes = backup(src, dst, p, module.check_mode)
        elif p["state"] == "restore":
            manifest, copied, nbytes = restore(src, dst, p, module.check_mode)
        elif p["state"] == "record":
            manifest, copied, nbytes = dict(p["manifest"], id=p["backup_id"]), 0, 0
            if not module.check_mode:
                dst.put_bytes(p["backup_bucket"], p["manifest_prefix"] + p["backup_id"] + ".json",
                              json.dumps(manifest, indent=1, sort_keys=True).encode())
        elif p["state"] == "verify":
            manifest, copied, nbytes = verify(dst, p), 0, 0
        elif p["state"] == "expire":
            expired = expire(dst, p, module.check_mode)
            manifest, copied, nbytes = {}, 0, 0
        else:
            manifest, copied, nbytes = read_manifest(dst, p), 0, 0
    except (S3Error, OSError, ValueError, KeyError) as exc:
        module.fail_json(msg=f"binaries {p['state']}: {exc}")
    changed = p["state"] in ("backup", "record") or copied > 0 or bool(expired)
    module.exit_json(changed=changed, manifest=manifest, copied=copied, bytes_copied=nbytes, expired=expired)


if __name__ == "__main__":
    main()

import json

import pytest

from builder.oci import mediatypes as mt
from builder.oci import mutate
from builder.oci.model import (Descriptor, ImageConfig, Index, Manifest, ModelError, Platform, RunConfig,
                               canonical_json, media_type_of)

D = "sha256:" + "1" * 64


def test_canonical_json_is_sorted_compact_utf8():
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()


def test_manifest_round_trip_keeps_unknown_fields():
    raw = {"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST,
           "config": {"mediaType": mt.DOCKER_CONFIG, "digest": D, "size": 3},
           "layers": [{"mediaType": mt.DOCKER_LAYER_GZIP, "digest": D, "size": 5, "urls": ["http://x"]}],
           "x-vendor": {"k": 1}}
    m = Manifest.from_bytes(json.dumps(raw).encode())
    assert m.media_type == mt.DOCKER_MANIFEST and m.layers[0].urls == ("http://x",)
    assert json.loads(m.to_bytes()) == raw


def test_manifest_rejects_garbage():
    for bad in [b"not json", b"[]", b'{"schemaVersion":1,"config":{}}',
                json.dumps({"schemaVersion": 2, "config": {"digest": "sha256:zz", "size": 1}}).encode(),
                json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}).encode()]:
        with pytest.raises(ModelError):
            Manifest.from_bytes(bad)


def test_index_and_platform():
    idx = Index(manifests=(Descriptor(mt.OCI_MANIFEST, D, 1, platform=Platform("linux", "arm64", "v8")),))
    back = Index.from_bytes(idx.to_bytes())
    assert back == idx and str(back.manifests[0].platform) == "linux/arm64/v8"
    assert media_type_of(idx.to_bytes()) == mt.OCI_INDEX
    assert Platform.parse("linux/amd64") == Platform("linux", "amd64")
    with pytest.raises(ModelError):
        Platform.parse("linux")


def test_config_round_trip_and_env():
    raw = {"architecture": "amd64", "os": "linux", "created": "2020-01-01T00:00:00Z",
           "config": {"Env": ["PATH=/bin", "A=1"], "Entrypoint": ["/app"], "Labels": {"l": "v"},
                      "ExposedPorts": {"8080/tcp": {}}, "Healthcheck": {"Test": ["NONE"]}},
           "rootfs": {"type": "layers", "diff_ids": [D]}, "history": [{"created_by": "x"}],
           "moby.buildkit.buildinfo.v1": "abc"}
    cfg = ImageConfig.from_bytes(json.dumps(raw).encode())
    assert json.loads(cfg.to_bytes()) == raw
    run = cfg.config.with_env({"A": "2", "B": "3"})
    assert run.env == ("PATH=/bin", "A=2", "B=3")


def test_apply_changes_entrypoint_clears_base_cmd():
    base = RunConfig(entrypoint=("/old",), cmd=("--flag",), env=("PATH=/bin",), user="0")
    new = mutate.apply_changes(base, mutate.ConfigChanges(entrypoint=("/new",)))
    assert new.entrypoint == ("/new",) and new.cmd is None and new.user == "0"
    kept = mutate.apply_changes(base, mutate.ConfigChanges(labels={"a": "b"}, user="1000"))
    assert kept.entrypoint == ("/old",) and kept.cmd == ("--flag",) and kept.user == "1000"


def test_append_layer_keeps_manifest_and_config_in_step():
    manifest = Manifest(config=Descriptor(mt.DOCKER_CONFIG, D, 1),
                        layers=(Descriptor(mt.DOCKER_LAYER_GZIP, D, 2),), media_type=mt.DOCKER_MANIFEST)
    config = ImageConfig(diff_ids=(D,))
    layer = Descriptor(mt.OCI_LAYER_GZIP, "sha256:" + "2" * 64, 9)
    m2, c2 = mutate.append_layer(manifest, config, layer, "sha256:" + "3" * 64, mutate.History(created_by="t"))
    m3, config_bytes = mutate.finalize(m2, c2)
    assert m3.media_type == mt.OCI_MANIFEST
    assert [x.media_type for x in m3.layers] == [mt.OCI_LAYER_GZIP, mt.OCI_LAYER_GZIP]
    assert m3.config == Descriptor.of(config_bytes, mt.OCI_CONFIG)
    assert len(ImageConfig.from_bytes(config_bytes).diff_ids) == len(m3.layers) == 2


def test_source_date_epoch(monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    assert mutate.rfc3339(mutate.source_date_epoch()) == "1980-01-01T00:00:01Z"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert mutate.source_date_epoch() == 1700000000
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "soon")
    with pytest.raises(Exception) as exc:
        mutate.source_date_epoch()
    assert "SOURCE_DATE_EPOCH" in str(exc.value)

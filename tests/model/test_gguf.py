"""GGUF bases: where the file comes from, the errors a user meets, and no half-written cache.
(The real conversion of SmolLM2's GGUF is tested in tests/real/test_smollm2.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from honer.config import config_from_dict
from honer.errors import ConfigError, ModelError


def _cfg(**keys):
    return config_from_dict({"datasets": [{"path": "d.jsonl", "type": "alpaca"}], **keys})


def _write_gguf(path: Path, arch: str) -> Path:
    import numpy as np
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), arch=arch)
    writer.add_name(f"tiny {arch}")
    writer.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_an_architecture_transformers_cannot_read_is_a_clear_error(tmp_path, monkeypatch):
    from honer.model.gguf import converted_base, describe

    monkeypatch.setenv("HONER_CACHE_DIR", str(tmp_path / "cache"))
    path = _write_gguf(tmp_path / "rwkv.gguf", "rwkv6")
    assert describe(path)[0] == "rwkv6"
    with pytest.raises(ModelError) as err:
        converted_base(_cfg(base_model=str(path)))
    message = str(err.value)
    assert "architecture rwkv6 is not supported" in message
    assert "transformers reads these GGUF architectures: " in message and "llama" in message
    assert not list((tmp_path / "cache" / "gguf").iterdir())  # no staging folder left behind


def test_gguf_paths_are_checked_with_what_is_there(tmp_path):
    from honer.model.gguf import gguf_path, is_gguf

    with pytest.raises(ModelError, match=r"base_model: `.*missing.gguf` is not a file"):
        gguf_path(_cfg(base_model=str(tmp_path / "missing.gguf")))
    (tmp_path / "a.Q4_0.gguf").write_bytes(b"")
    cfg = _cfg(base_model=str(tmp_path), gguf_file="b.gguf")
    assert is_gguf(cfg)
    with pytest.raises(ModelError, match=r"GGUF files there: a.Q4_0.gguf"):
        gguf_path(cfg)
    assert gguf_path(_cfg(base_model=str(tmp_path), gguf_file="a.Q4_0.gguf")).name == "a.Q4_0.gguf"
    assert not is_gguf(_cfg(base_model="HuggingFaceTB/SmolLM2-135M-Instruct"))


def test_gguf_config_contradictions_are_reported_together() -> None:
    with pytest.raises(ConfigError) as err:
        _cfg(base_model="m.gguf", gguf_file="m.gguf", base_model_config="other")
    keys = [key for key, _ in err.value.problems]
    assert keys == ["gguf_file", "base_model_config"]
    with pytest.raises(ConfigError, match="is not a .gguf file name"):
        _cfg(base_model="repo/name", gguf_file="model.bin")


def test_a_hub_gguf_offline_names_the_repository(monkeypatch):
    from honer.model.gguf import gguf_path

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = _cfg(base_model="someone/not-cached-GGUF", gguf_file="m.Q4_K_M.gguf")
    with pytest.raises(ModelError, match="cannot get `m.Q4_K_M.gguf` from the hub repository"):
        gguf_path(cfg)

"""The multi-process keys: Axolotl spellings accepted, mapped onto TrainingArguments exactly,
contradictions and FSDP1 leftovers refused with the key path, one-process sharding refused."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from honer import hardware
from honer.cli.main import app
from honer.config import config_from_dict
from honer.errors import ConfigError, NotSupportedError
from honer.train import parallel
from tests.helpers import write_addition_run

MINIMAL = {"base_model": "m", "datasets": [{"path": "d.jsonl", "type": "alpaca"}]}


def _problems(**extra) -> dict[str, str]:
    with pytest.raises(ConfigError) as err:
        config_from_dict({**MINIMAL, **extra})
    return dict(err.value.problems)


def test_axolotl_fsdp_config_maps_onto_fsdp2_arguments():
    cfg = config_from_dict(
        {
            **MINIMAL,
            "fsdp": "full_shard auto_wrap",
            "fsdp_config": {
                "fsdp_offload_params": True,
                "fsdp_state_dict_type": "SHARDED_STATE_DICT",
                "fsdp_transformer_layer_cls_to_wrap": "LlamaDecoderLayer",
                "cpu_ram_efficient_loading": True,
            },
            "fsdp_version": 2,
        }
    )
    assert cfg.fsdp == ["full_shard", "auto_wrap"]
    assert parallel.fsdp_config(cfg) == {
        "version": 2,
        "reshard_after_forward": True,
        "cpu_offload": True,
        "state_dict_type": "SHARDED_STATE_DICT",
        "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
        "cpu_ram_efficient_loading": True,
        "activation_checkpointing": False,
        "transformer_layer_cls_to_wrap": ["LlamaDecoderLayer"],
    }
    grad_op = config_from_dict({**MINIMAL, "fsdp": ["shard_grad_op", "offload"]})
    mapped = parallel.fsdp_config(grad_op)
    assert mapped["reshard_after_forward"] is False and mapped["cpu_offload"] is True


@pytest.mark.parametrize(
    ("extra", "path", "needle"),
    [
        ({"deepspeed": "zero2", "fsdp": ["full_shard"]}, "fsdp", "choose one sharding engine"),
        ({"deepspeed": "zero9"}, "deepspeed", "neither a shipped config (zero1, zero2, zero3"),
        ({"fsdp": ["hybrid_shard"]}, "fsdp", "`hybrid_shard` is an FSDP1 strategy"),
        ({"fsdp": ["full_shard", "shard_grad_op"]}, "fsdp", "both set: choose one"),
        ({"fsdp": ["full_shard"], "fsdp_version": 1}, "fsdp_version", "FSDP1 is not supported"),
        (
            {"fsdp": ["full_shard"], "fsdp_config": {"version": 1}},
            "fsdp_config.version",
            "FSDP1 is not supported",
        ),
        (
            {"fsdp": ["full_shard"], "fsdp_config": {"sharding_strategy": "HYBRID_SHARD"}},
            "fsdp_config.sharding_strategy",
            "is an FSDP1 strategy FSDP2 does not have",
        ),
        (
            {"deepspeed": "zero3", "ddp_find_unused_parameters": True},
            "ddp_find_unused_parameters",
            "applies to DDP only",
        ),
        (
            {"fsdp_config": {"ofload_params": True}, "fsdp": ["full_shard"]},
            "fsdp_config.ofload_params",
            "Did you mean `offload_params`?",
        ),
    ],
)
def test_multi_process_contradictions_name_the_key(extra, path, needle):
    problems = _problems(**extra)
    assert path in problems, problems
    assert needle in problems[path]


def test_deepspeed_presets_are_shipped_and_paths_accepted(tmp_path):
    for name in parallel.DEEPSPEED_PRESETS:
        cfg = config_from_dict({**MINIMAL, "deepspeed": name})
        data = json.loads(parallel.deepspeed_config_path(name).read_text())
        assert parallel.deepspeed_stage(cfg) == data["zero_optimization"]["stage"]
        assert "optimizer" not in data  # the Trainer builds it (DeepSpeed's would compile)
    assert parallel.deepspeed_stage(config_from_dict({**MINIMAL, "deepspeed": "zero3"})) == 3
    own = tmp_path / "ds.json"
    own.write_text(json.dumps({"zero_optimization": {"stage": 2}}))
    assert parallel.deepspeed_stage(config_from_dict({**MINIMAL, "deepspeed": str(own)})) == 2


def test_training_kwargs_for_cpu_ranks(monkeypatch):
    monkeypatch.setattr(hardware, "cuda_available", lambda: False)
    cfg = config_from_dict({**MINIMAL, "deepspeed": "zero2", "ddp_timeout": 60})
    monkeypatch.setenv("WORLD_SIZE", "2")
    kwargs = parallel.training_kwargs(cfg)
    assert kwargs["use_cpu"] is True and kwargs["ddp_backend"] == "gloo"
    assert kwargs["ddp_timeout"] == 60
    assert kwargs["deepspeed"].endswith("configs/deepspeed/zero2.json")
    monkeypatch.setenv("WORLD_SIZE", "1")
    with pytest.raises(NotSupportedError, match="`deepspeed` shards across processes"):
        parallel.training_kwargs(cfg)
    plain = parallel.training_kwargs(
        config_from_dict({**MINIMAL, "ddp_find_unused_parameters": True})
    )
    assert plain == {"ddp_timeout": 1800, "ddp_find_unused_parameters": True}


def test_train_refuses_sharding_in_one_process_before_loading_anything(tmp_path):
    cfg = write_addition_run(tmp_path, "no/such-model", 4, "fsdp: [full_shard]\n")
    result = CliRunner().invoke(app, ["train", str(cfg)])
    assert isinstance(result.exception, NotSupportedError)
    assert "--num-processes N" in str(result.exception)


def test_deepspeed_without_its_package_is_a_clear_error(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "deepspeed" else real(name, *a),
    )
    cfg = config_from_dict({**MINIMAL, "deepspeed": "zero2"})
    with pytest.raises(NotSupportedError, match=r"pip install 'honer\[deepspeed\]'"):
        parallel.check_engine(cfg, 2)

"""Config: unknown keys and bad values raise naming the field; TOML round trips; presets; --set."""

import dataclasses

import pytest

from seqrec import PRESETS, Config, Runtime, SequentialRecommender, preset
from seqrec.config import parse_set
from seqrec.losses import BCELoss, SampledSoftmaxLoss


def test_unknown_key_raises_naming_it():
    with pytest.raises(ValueError, match="dimm"):
        Config.from_dict({"dimm": 64})
    with pytest.raises(ValueError, match="n_layer"):
        Config().replace(n_layer=2)
    with pytest.raises(ValueError, match="dimm"):
        Config.from_toml("dimm = 3\n")


@pytest.mark.parametrize(("field", "value"), [
    ("layer", "lstm"), ("loss", "hinge"), ("objective", "clm"), ("sampler", "popular"),
    ("dim", 0), ("dim", 3.5), ("n_layers", True), ("batch_size", -1), ("patience", -1),
    ("dropout", 1.0), ("mask_prob", 1.5), ("gbce_t", -0.1), ("lr", 0), ("seed", "zero"), ("item_dropout", 1.0), ("item_dropout", -0.1),
    ("dropout", "width"), ("item_dropout", "depth"), ("dropout", -0.2),
    ("adam_beta2", 1.0), ("adam_beta1", -0.5), ("final_norm", "yes"), ("bucket_batches", 0),
])  # fmt: skip
def test_bad_value_raises_naming_field_and_value(field, value):
    with pytest.raises(ValueError, match=field) as error:
        Config().replace(**{field: value})
    assert repr(value) in str(error.value)


@pytest.mark.parametrize(("field", "value"), [("precision", "fp8"), ("accelerator", "tpu"),
                                              ("devices", 0), ("threads", -2)])
def test_bad_runtime_value_raises_naming_field_and_value(field, value):
    with pytest.raises(ValueError, match=field) as error:
        Runtime(**{field: value})
    assert repr(value) in str(error.value)


@pytest.mark.parametrize("key", ["devices", "precision", "accelerator", "num_nodes"])
def test_runtime_settings_are_not_config_keys(key):
    with pytest.raises(ValueError, match="runtime setting"):
        Config().replace(**{key: 1})
    with pytest.raises(ValueError, match=f"use --{key.replace('_', '-')}"):
        parse_set([f"{key}=2"])


def test_saved_configs_of_older_versions_load_without_their_hardware_keys():
    text = Config(dim=48).to_toml() + 'devices = 4\nprecision = "bf16-mixed"\neval_batch_size = 64\n'
    assert Config.from_saved(text) == Config(dim=48)


def test_dim_not_divisible_by_heads_raises_naming_both():
    with pytest.raises(ValueError, match="dim=30.*n_heads=4"):
        Config(dim=30, n_heads=4)


def test_masked_item_with_a_non_uniform_sampler_raises():
    with pytest.raises(ValueError, match="sampler"):
        Config(objective="masked_item", loss="sampled_softmax", sampler="in_batch")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_toml_round_trip_is_identity(name, tmp_path):
    config = preset(name, lr=3e-4, dim=48, n_heads=2, dropout=0.15)
    assert Config.from_toml(config.to_toml()) == config
    assert Config.from_dict(config.to_dict()) == config
    file = tmp_path / "model.toml"
    file.write_text(config.to_toml())
    assert Config.load(file) == config


def test_toml_model_table_and_base_are_honoured():
    base = preset("sasrec")
    config = Config.from_toml('[model]\ndim = 128\nlayer = "ligr"\n', base=base)
    assert (config.dim, config.layer, config.loss) == (128, "ligr", "bce")


def test_invalid_toml_file_raises_value_error_naming_the_file(tmp_path):
    file = tmp_path / "bad.toml"
    file.write_text("dim = = 3")
    with pytest.raises(ValueError, match="bad.toml"):
        Config.load(file)


@pytest.mark.parametrize(("name", "parts"), [
    ("esasrec", ("next_item", "ligr", "sampled_softmax")),
    ("sasrec", ("next_item", "sasrec", "bce")),
    ("sasrec_ss", ("next_item", "sasrec", "sampled_softmax")),
    ("gsasrec", ("next_item", "sasrec", "gbce")),
    ("bert4rec", ("masked_item", "sasrec", "softmax")),
])  # fmt: skip
def test_presets_exist_with_the_published_parts(name, parts):
    config = preset(name)
    assert (config.objective, config.layer, config.loss) == parts


def test_preset_details_from_the_papers():
    assert preset("sasrec").n_negatives == 1  # one negative per position (Kang & McAuley 2018)
    assert preset("gsasrec").gbce_t == 0.75
    assert preset("esasrec").n_negatives == 256


def test_unknown_preset_raises_listing_the_known_ones():
    with pytest.raises(ValueError, match="esasrec"):
        preset("sasrec++")


def test_parse_set_types_values_like_toml():
    values = parse_set(["dim=128", "lr=3e-4", "layer=ligr", 'loss="bce"', "dropout=0.1",
                        "patience = 0"])
    assert values == {"dim": 128, "lr": 3e-4, "layer": "ligr", "loss": "bce", "dropout": 0.1,
                      "patience": 0}
    assert type(values["dim"]) is int and type(values["lr"]) is float
    assert Config.from_dict(values).dim == 128


@pytest.mark.parametrize(("item", "match"), [("dim", "key=value"), ("=3", "key=value"),
                                             ("dimm=3", "dimm")])
def test_parse_set_rejects_malformed_and_unknown(item, match):
    with pytest.raises(ValueError, match=match):
        parse_set([item])


def test_a_part_can_be_swapped_from_python(pattern):
    dataset, split = pattern
    seen = []

    def override(parts):
        seen.append(parts.loss)
        return dataclasses.replace(parts, loss=BCELoss())

    config = preset("sasrec_ss", dim=16, epochs=1, batch_size=128, max_seq_len=8, n_negatives=4)
    model = SequentialRecommender(config, parts_override=override)
    model.fit(dataset, split.train)
    assert len(seen) == 1 and isinstance(seen[0], SampledSoftmaxLoss)
    assert isinstance(model.parts.loss, BCELoss)


def test_time_aware_layers_swap_in_by_config_like_every_layer():
    from seqrec.build import build_parts
    from seqrec.time_layers import FuXiAlphaLayer, HSTULayer

    for layer, cls in (("hstu", HSTULayer), ("fuxi_alpha", FuXiAlphaLayer)):
        parts = build_parts(preset("esasrec", layer=layer, n_layers=2), 20)
        assert all(isinstance(block, cls) for block in parts.encoder.layers)
        assert parts.encoder.uses_times and parts.loss.__class__.__name__ == "SampledSoftmaxLoss"
    assert preset("hstu").layer == "hstu" and preset("fuxi_alpha").layer == "fuxi_alpha"
    assert parse_set(["layer=hstu"]) == {"layer": "hstu"}


@pytest.mark.parametrize("value", [0, -0.1, True, "x", float("inf"), float("nan")])
def test_temperature_must_be_a_positive_number(value):
    with pytest.raises(ValueError, match="temperature"):
        Config(temperature=value)


def test_similarity_names_the_allowed_values():
    with pytest.raises(ValueError, match="similarity='l2'.*dot, cosine"):
        Config(similarity="l2")


def test_item_dropout_by_width_grows_with_the_table_and_is_exact_at_dim_64():
    from seqrec.config import item_dropout_for_width

    assert item_dropout_for_width(64) == 0.2  # exactly: dim-64 runs train as with 0.2
    assert item_dropout_for_width(128) == 0.3 and item_dropout_for_width(256) == 0.4  # as run
    assert item_dropout_for_width(16) == 0.0 and item_dropout_for_width(4096) == 0.5
    assert Config(item_dropout="width", dim=256).item_dropout_rate == pytest.approx(0.4)
    assert Config(item_dropout=0.1, dim=256).item_dropout_rate == 0.1


def test_item_dropout_width_round_trips_and_parses_from_the_command_line():
    config = Config(item_dropout="width")
    assert Config.from_toml(config.to_toml()) == config
    assert parse_set(["item_dropout=width"]) == {"item_dropout": "width"}
    with pytest.raises(ValueError, match=r"item_dropout='wide'.*\[0, 1\) or \"width\""):
        Config(item_dropout="wide")


def test_the_encoder_drops_item_rows_at_the_rate_of_its_width():
    from seqrec.build import build_parts

    for dim, rate in ((64, 0.2), (256, 0.4)):
        parts = build_parts(Config(item_dropout="width", dim=dim), n_items=10)
        assert parts.encoder.item_dropout == pytest.approx(rate)


def test_the_esasrec_preset_scales_its_item_dropout_when_only_the_width_is_set():
    assert preset("esasrec").item_dropout_rate == 0.2
    assert preset("esasrec").replace(dim=256).item_dropout_rate == pytest.approx(0.4)
    assert parse_set(["dim=128"]) and preset("esasrec", **parse_set(["dim=128"])) \
        .item_dropout_rate == pytest.approx(0.3)
    assert preset("esasrec", dim=256, item_dropout=0.2).item_dropout_rate == 0.2  # set wins


def test_dropout_by_depth_keeps_one_and_two_blocks_at_exactly_0_2_and_grows_beyond():
    from seqrec.size_rules import dropout_for_depth

    assert dropout_for_depth(1) == 0.2 and dropout_for_depth(2) == 0.2  # exactly: as measured
    assert dropout_for_depth(3) == 0.25 and dropout_for_depth(4) == 0.3  # 4: as run
    assert dropout_for_depth(6) == 0.4 and dropout_for_depth(48) == 0.4  # capped
    assert Config(dropout="depth", n_layers=4).dropout_rate == 0.3
    assert Config(dropout=0.1, n_layers=4).dropout_rate == 0.1
    assert Config(dropout="depth", n_layers=4, item_dropout="width", dim=128).rule_rates() == {
        "dropout": 0.3, "item_dropout": 0.3}
    assert Config(dropout="depth", item_dropout=0.1).rule_rates() == {"dropout": 0.2}


def test_dropout_depth_round_trips_parses_and_rejects_other_words():
    config = Config(dropout="depth", n_layers=4)
    assert Config.from_toml(config.to_toml()) == config
    assert Config.from_saved(config.to_dict()) == config
    assert parse_set(["dropout=depth"]) == {"dropout": "depth"}
    with pytest.raises(ValueError, match=r"dropout='deep'.*\[0, 1\) or \"depth\""):
        Config(dropout="deep")


def test_the_esasrec_preset_drops_more_in_deeper_stacks_and_builds_with_that_rate():
    from seqrec.build import build_parts

    assert preset("esasrec").dropout_rate == 0.2 and preset("esasrec", n_layers=2).dropout_rate == 0.2
    assert preset("esasrec", dropout=0.1, n_layers=4).dropout_rate == 0.1  # set wins
    encoder = build_parts(preset("esasrec", n_layers=4, dim=16), n_items=10).encoder
    assert encoder.dropout.p == 0.3 and "p=0.3" in repr(encoder.dropout)
    assert [layer.drop.p for layer in encoder.layers] == [0.3] * 4
    for name in ("sasrec", "hstu", "fuxi_alpha"):  # the other presets keep a fixed rate
        assert preset(name, n_layers=4).dropout == 0.2


def test_inert_settings_name_the_keys_that_change_nothing_under_the_config():
    from seqrec.config import inert_settings

    esasrec = preset("esasrec")  # dot similarity, sampled softmax, uniform sampler, one block
    assert inert_settings(esasrec, ["temperature", "gbce_t", "dim", "stochastic_depth"]) == [
        'temperature: no effect unless similarity = "cosine" (it is "dot")',
        'gbce_t: no effect unless loss = "gbce" (it is "sampled_softmax")',
        "stochastic_depth: no effect unless n_layers > 1 (it is 1)",
    ]
    assert inert_settings(esasrec.replace(similarity="cosine", n_layers=2),
                          ["temperature", "stochastic_depth", "negative_sharing"]) == []
    assert inert_settings(preset("bert4rec"), ["n_negatives", "mask_prob"]) == [
        'n_negatives: no effect unless loss != "softmax" (it is "softmax")']


def test_make_config_warns_about_a_set_that_changes_nothing():
    from seqrec.cli.common import make_config

    with pytest.warns(UserWarning, match=r'--set temperature: no effect unless similarity = '
                                         r'"cosine" \(it is "dot"\); applied anyway'):
        config = make_config("esasrec", None, ["temperature=0.1"])
    assert config.temperature == 0.1  # still applied: it takes effect if similarity changes


def test_compare_warns_only_about_a_set_that_changes_no_compared_model():
    import warnings

    from seqrec.cli.common import warn_inert

    models = [preset("esasrec"), preset("bert4rec")]  # bert4rec has no negatives; esasrec has
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn_inert(models, ["n_negatives=8", "temperature=0.1"])
    assert [str(w.message) for w in caught] == [
        '--set temperature: no effect unless similarity = "cosine" (it is "dot"); applied anyway']

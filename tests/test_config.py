import pytest

from tests.helpers import run_cli
from trashseg.config import RECYCLING_CLASSES, InferConfig, dump_config, load_config
from trashseg.errors import TrashsegError


def test_defaults_are_the_recycling_classes():
    cfg = load_config()
    assert cfg.data.classes == list(RECYCLING_CLASSES)
    assert cfg.data.num_classes == 11


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("data:\n  clases: [a, b]\n")
    with pytest.raises(TrashsegError, match=r"data\.clases: unknown key"):
        load_config(path)


def test_wrong_type_is_named(tmp_path):
    with pytest.raises(TrashsegError, match=r"data\.ignore_index: .*integer"):
        load_config(None, ["data.ignore_index=abc"])


def test_base_inheritance_and_overrides(tmp_path):
    (tmp_path / "base.yaml").write_text("data:\n  classes: [bg, a, b]\n  val: v.json\n")
    (tmp_path / "r.yaml").write_text("_base_: [base.yaml]\nname: r\ndata:\n  val: w.json\n")
    cfg = load_config(tmp_path / "r.yaml", ["data.classes=[bg, x]", "name=changed"])
    assert cfg.data.classes == ["bg", "x"] and cfg.data.val == "w.json" and cfg.name == "changed"
    assert "w.json" in dump_config(cfg)


def test_delete_replaces_an_inherited_section(tmp_path):
    """A recipe that swaps Unet for FPN must not inherit Unet's decoder_channels (FPN would reject them)."""
    (tmp_path / "base.yaml").write_text("model:\n  arch: Unet\n  params: {decoder_channels: [64, 32, 16, 8, 4]}\n")
    (tmp_path / "merge.yaml").write_text("_base_: base.yaml\nmodel:\n  params: {upsampling: 2}\n")
    (tmp_path / "swap.yaml").write_text(
        "_base_: base.yaml\nmodel:\n  arch: FPN\n  params: {_delete_: true, decoder_dropout: 0.1}\n"
    )
    assert load_config(tmp_path / "merge.yaml").model.params == {
        "decoder_channels": [64, 32, 16, 8, 4],
        "upsampling": 2,
    }
    assert load_config(tmp_path / "swap.yaml").model.params == {"decoder_dropout": 0.1}
    (tmp_path / "alone.yaml").write_text("model:\n  params: {_delete_: true, decoder_dropout: 0.1}\n")
    assert load_config(tmp_path / "alone.yaml").model.params == {"decoder_dropout": 0.1}


def test_bad_override_syntax(tmp_path):
    with pytest.raises(TrashsegError, match="expected KEY=VALUE"):
        load_config(None, ["data.classes"])


@pytest.mark.parametrize("value", ["[192]", "[16, 320]", "[192, 320, 3]", "true"])
def test_a_size_that_is_neither_a_side_nor_height_width_is_named(value):
    with pytest.raises(TrashsegError, match=r"augment\.image_size: .*a side S \(S×S\) or \[height, width\]"):
        load_config(None, [f"augment.image_size={value}"])


def test_a_height_width_size_loads_as_a_pair_and_dumps_as_a_list():
    cfg = load_config(None, ["augment.image_size=[192, 320]", "data.cache_size=[192, 320]"])
    assert cfg.augment.image_size == (192, 320) and cfg.data.cache_size == (192, 320)
    assert "  image_size:\n  - 192\n  - 320\n" in dump_config(cfg)  # config.yaml of a run: plain YAML, no tuple tag


def test_a_schedule_fitted_to_a_missing_time_limit_is_named():
    with pytest.raises(TrashsegError, match=r"train: .*fit_schedule_to_time_limit needs train\.time_limit_minutes"):
        load_config(None, ["train.fit_schedule_to_time_limit=true"])


def test_duplicate_classes_rejected():
    with pytest.raises(TrashsegError, match=r"data\.classes: .*duplicate class names \['a'\]"):
        load_config(None, ["data.classes=[bg, a, a]"])


@pytest.mark.parametrize(
    ("override", "error"),
    [
        ("model.logit_bias=[0, 1]", r"model\.logit_bias has 2 values but data\.classes has 11 classes"),
        ("loss.logit_adjustment=0.5", r"loss: .*logit_adjustment takes back class weights: set class_weights too"),
    ],
)
def test_logit_bias_settings_that_cannot_apply_are_named(override, error):
    with pytest.raises(TrashsegError, match=error):
        load_config(None, [override])


def test_shipped_data_configs_load():
    assert load_config("configs/data/trashcan.yaml").data.num_classes == 17
    assert load_config("configs/data/recycling.yaml").data.classes == list(RECYCLING_CLASSES)


def test_python_tags_in_set_values_and_recipes_are_refused_without_running_them(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(TrashsegError, match=r"--set name: .*is not a plain YAML value .*python/object/apply"):
        load_config(None, [f'name=!!python/object/apply:os.system ["touch {marker}"]'])
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f'name: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(TrashsegError, match=r"r.yaml: invalid YAML: .*python/object/apply"):
        load_config(recipe)
    assert not marker.exists()


def test_recipe_that_is_not_utf8_is_named(tmp_path):
    recipe = tmp_path / "latin1.yaml"
    recipe.write_bytes("name: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(TrashsegError, match=r"latin1.yaml: not UTF-8 text \(byte 0xe9 at offset 9\)"):
        load_config(recipe)


def test_set_value_that_is_not_yaml_is_named(tiny, capsys):
    code, text = run_cli(["data", "check", tiny, "--set", "data.classes=[bg, a"], capsys)
    assert code == 2 and "--set data.classes: '[bg, a' is not a plain YAML value" in text, text
    assert "Traceback" not in text


@pytest.mark.parametrize(
    "override, key",
    [
        ("train.grad_clip=.nan", "train.grad_clip"),
        ("optim.lr=.inf", "optim.lr"),
        ("optim.lr=nan", "optim.lr"),
        ("infer.scales=[1.0, -.inf]", "infer.scales.1"),
        ("model.std=[0.5, .nan, 0.5]", "model.std.1"),
    ],
)
def test_non_finite_numbers_are_refused_by_key(override, key):
    with pytest.raises(TrashsegError, match=rf"{key}: Input should be a finite number"):
        load_config(None, [override])


def test_shipped_recipes_load_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # outside the checkout: no configs/ here
    assert load_config("upernet_swin_b").model.arch == "UPerNet"
    assert load_config("data/trashcan").data.num_classes == 17
    # the README's checkout paths still work, through the shipped copy
    assert load_config("configs/small_cpu.yaml").name == "small_cpu"


def test_a_local_file_wins_over_a_shipped_recipe_of_the_same_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "small_cpu.yaml").write_text("name: mine\n")
    assert load_config("small_cpu.yaml").name == "mine"
    assert load_config("small_cpu").name == "small_cpu"  # a bare name is the shipped recipe


def test_unknown_recipe_names_the_shipped_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        TrashsegError, match=r"config file not found: upernet_swin_x; .*upernet_swin_b.*trashseg configs"
    ):
        load_config("upernet_swin_x")
    with pytest.raises(TrashsegError, match="config file not found: ../configs/small_cpu.yaml"):
        load_config("../configs/small_cpu.yaml")  # names never climb out of the shipped folder


def test_configs_command_lists_every_recipe_with_its_description(cli):
    from trashseg.config import RECIPES, recipe_description, recipe_names

    code, text = cli(["configs"])
    flat = " ".join(text.split())
    names = recipe_names()
    assert code == 0 and {"small_cpu", "upernet_swin_b", "data/trashcan", "data/recycling"} <= set(names)
    for name in names:
        description = recipe_description(RECIPES / f"{name}.yaml")
        assert description and name in flat, name  # every shipped recipe opens with a comment saying what it is
    assert "Small recipe for CPU" in flat and "UPerNet on Swin-B" in flat


def test_stated_infer_settings_win_and_the_models_own_fill_the_rest():
    own = InferConfig(hflip=True, scales=[1.0, 1.25], batch_size=4)
    assert load_config(None, []).infer.over(own).model_dump() == own.model_dump()  # nothing stated: the run's own
    merged = load_config(None, ["infer.scales=[1.0]", "infer.hflip=false"]).infer.over(own)
    assert (merged.hflip, merged.scales, merged.batch_size) == (False, [1.0], 4)

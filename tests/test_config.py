import time
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

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


def _laughs(levels: int) -> str:
    """The "billion laughs" document in a recipe: each level ten aliases of the one before, 10^levels strings."""
    lines = [
        "model:",
        "  params:",
        "    l0: &l0 {a: lol, b: lol, c: lol, d: lol, e: lol, f: lol, g: lol, h: lol, i: lol, j: lol}",
    ]
    keys = "abcdefghij"
    lines += [f"    l{i}: &l{i} {{{', '.join(f'{k}: *l{i - 1}' for k in keys)}}}" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("levels", [7, 9])
def test_aliases_that_expand_exponentially_are_refused_in_bounded_memory_and_time(tmp_path, levels):
    """The merge walks each alias again: 6 levels took 3 s and 106 MB, each level 10x more (so 7: ~1 GB; 9: out of
    memory); through a run's config.yaml this reached audit, kfold, predict and --resume. Refused while counting,
    before anything is built."""
    recipe = tmp_path / "config.yaml"
    recipe.write_text(_laughs(levels))
    assert len(recipe.read_bytes()) < 1000
    tracemalloc.start()
    start = time.process_time()
    try:
        with pytest.raises(TrashsegError, match=r"config\.yaml: invalid YAML: more than 100000 values \(aliases"):
            load_config(recipe)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20 and time.process_time() - start < 5, (peak, time.process_time() - start)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("&a [*a]\n", r"nested deeper than 32 levels \(aliases expanded\) \(line 1, column 1\)"),
        ("model:\n  params: " + "[" * 5000 + "]" * 5000 + "\n", r"nested deeper than 32 levels \(line 2"),
        ("name: *secret\n", r"found undefined alias \(line 1, column 7\)$"),
    ],
)
def test_self_referencing_deep_or_broken_yaml_is_named_without_its_text(tmp_path, text, error):
    """A self-containing alias, or nesting past Python's recursion limit, was a RecursionError traceback."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text)
    with pytest.raises(TrashsegError, match=rf"r\.yaml: invalid YAML: {error}"):
        load_config(recipe)


def test_aliases_within_the_bounds_still_work(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("data:\n  classes: &cls [bg, can]\nserve:\n  tta: [none]\nname: n\nmodel:\n  params: {c: *cls}\n")
    assert load_config(recipe).model.params == {"c": ["bg", "can"]}


def test_base_reads_only_yaml_files_and_never_prints_their_text(tmp_path):
    """``_base_: [/etc/shadow]`` used to return the file's lines as "unknown key" errors; a link named .yaml is
    judged by what it leads to."""
    secret = tmp_path / "secret.txt"
    secret.write_text("sesame:$6$hash:19000:0:99999:7:::\n")
    (tmp_path / "link.yaml").symlink_to(secret)
    (tmp_path / "big.yaml").write_text("name: x\n" + "#" * (1 << 20))
    (tmp_path / "broken.yaml").write_text("name: 'sesame:$6$hash\n")
    for base, error in [
        (secret, "a config must be a YAML file"),
        ("link.yaml", "a config must be a YAML file"),
        ("big.yaml", "a config is at most 1048576 bytes"),
        ("broken.yaml", "invalid YAML: while scanning a quoted scalar; found unexpected end of stream"),
        (5, "_base_ must be a file name or a list of file names"),
    ]:
        (tmp_path / "r.yaml").write_text(f"_base_: [{base}]\n" if base != 5 else "_base_: 5\n")
        with pytest.raises(TrashsegError, match=error) as caught:
            load_config(tmp_path / "r.yaml")
        assert "$6$" not in str(caught.value) and "sesame" not in str(caught.value), caught.value


def test_a_diamond_of_bases_reads_a_bounded_number_of_files(tmp_path):
    """Each file naming the one before twice read 2^20 files."""
    (tmp_path / "d0.yaml").write_text("name: x\n")
    for i in range(1, 20):
        (tmp_path / f"d{i}.yaml").write_text(f"_base_: [d{i - 1}.yaml, d{i - 1}.yaml]\n")
    assert load_config(tmp_path / "d3.yaml").name == "x"
    with pytest.raises(TrashsegError, match=r"d19\.yaml: inherits from more than 16 files"):
        load_config(tmp_path / "d19.yaml")


def test_set_keys_and_values_are_bounded_in_depth():
    with pytest.raises(TrashsegError, match=r"--set 'x(\.x)+': nested deeper than 32 levels"):
        load_config(None, ["x" + ".x" * 40 + "=1"])
    with pytest.raises(TrashsegError, match=r"--set model\.params\.p: .* is not a plain YAML value \(nested deeper"):
        load_config(None, ["model.params.p=" + "[" * 40 + "]" * 40])


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)
_YAMLISH = st.lists(st.sampled_from(["a", ":", " ", "\n", "- ", "[", "]", "{", "}", "&x ", "*x", "!!", "'", "_base_"]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(_TEXT, _YAMLISH.map("".join)), raw=st.binary(max_size=64))
def test_fuzzed_recipes_load_or_give_a_named_error(tmp_path, text, raw):
    for content in (text.encode("utf-8"), raw):
        (tmp_path / "r.yaml").write_bytes(content)
        try:
            load_config(tmp_path / "r.yaml")
        except TrashsegError as exc:
            assert "r.yaml" in str(exc)


@settings(max_examples=150, deadline=None)
@given(key=st.one_of(_TEXT, st.sampled_from(["name", "data.classes", "model.params.x", "train"])), value=_TEXT)
def test_fuzzed_set_overrides_apply_or_give_a_named_error(key, value):
    try:
        load_config(None, [f"{key}={value}"])
    except TrashsegError as exc:
        assert str(exc).startswith(("--set", "defaults: invalid config")), exc

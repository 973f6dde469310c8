"""Fused attention's online-softmax exponentials on the special-function units (engine.softmax_exponentials):
one exponential per score, in series with the two matrix products unless the back-end hides a share of them.
The published kernel rows this term was checked on are in measurements/kernels (README "Fidelity")."""
import pytest

from conftest import DATA
from simulator import run
from simulator.engine import Terms

NO_POWER = Terms.without({"power"})
# the test chip (100 TFLOP/s fp16 = 10 cores x 1 GHz x 10,000 FLOP per clock; 1 TB/s), lossless efficiencies,
# FlashAttention-2's blocks; its special-function units are set per test
CHIP = (DATA / "chip.yaml").read_text().replace("efficiency: {matrix: 1.0,", "efficiency: {attention: 1.0, matrix: 1.0,")
CHIP += "attention_tile: {q: 128, k: 64, head_dim_multiple: 32}\n"


def attention_model(write, head_dim: int, heads: int, dtype: str = "fp16") -> str:
    # self-attention over 8192 tokens: compute-bound at any head dim here (the scores never leave the chip)
    width = heads * head_dim
    return write(f"""\
name: Toy
family: llm
params: {{dtype: {dtype}}}
stages:
  - name: s
    inputs:
      q: {{shape: [1, 8192, {width}]}}
      k: {{shape: [1, 8192, {width}]}}
      v: {{shape: [1, 8192, {width}]}}
    ops:
      - {{name: attn, op: attention, in: [q, k, v], heads: {heads}}}
""", f"attn{head_dim}.yaml")


def chip_file(write, extra: str = "") -> str:
    return write(CHIP + extra, f"chip{abs(hash(extra))}.yaml")


def attn_time(model, hw, **kw) -> float:
    r = run(model, hw, terms=NO_POWER, stack="eager", **kw)
    (op,) = [o for o in r.by_op() if o["name"] == "attn"]
    assert op["backend"] == "flash" and op["bound"] == "compute"
    return op["time_s"]


def test_each_score_adds_one_exponential_at_the_special_function_rate(write):
    # 16 exponentials per clock per core: 10 x 1e9 x 16 = 1.6e11/s; per score 4 x 128 matrix FLOPs at 1e14/s
    # take 5.12 ps and one exponential 6.25 ps, so the loop takes (5.12 + 6.25) / 5.12 = 1 + 1e14 / (512 x 1.6e11)
    # times as long
    m = attention_model(write, 128, 8)
    bare = attn_time(m, chip_file(write))
    with_sfu = attn_time(m, chip_file(write, "per_core: {special_function: 16}\n"))
    assert with_sfu / bare == pytest.approx(1.0 + 1e14 / (4 * 128 * 1.6e11), rel=1e-12)


def test_small_head_dims_and_fast_matrix_rates_leave_more_to_the_exponentials(write):
    hw = chip_file(write, "per_core: {special_function: 16}\n")
    # the same FLOPs at head dim 64 (10 heads) and 128 (5 heads), both 64 query blocks per head over the 10 cores
    # (no wave remainder): per FLOP, d = 64 spends twice the exponentials
    t64, t128 = attn_time(attention_model(write, 64, 10), hw), attn_time(attention_model(write, 128, 5), hw)
    x = 1e14 / 1.6e11
    assert t64 / t128 == pytest.approx((1 + x / 256) / (1 + x / 512), rel=1e-9)
    # doubling the matrix peak halves only the matrix part
    faster = attn_time(attention_model(write, 128, 5), hw, hw_overrides={"compute.fp16": 2e14})
    assert faster / t128 == pytest.approx((0.5 + x / 512) / (1 + x / 512), rel=1e-9)


def test_a_back_end_that_hides_the_exponentials_pays_only_the_rest(write):
    m = attention_model(write, 128, 8)
    bare = attn_time(m, chip_file(write))
    x = 1e14 / (4 * 128 * 1.6e11)
    hiding = CHIP.replace("efficiency: {attention: 1.0,", "efficiency: {attention: 1.0, softmax_overlap: {flash: 0.5},")
    half = attn_time(m, write(hiding + "per_core: {special_function: 16}\n", "half.yaml"))
    assert half / bare == pytest.approx(1.0 + 0.5 * x, rel=1e-12)


def test_devices_without_special_function_units_and_plain_gemms_are_unchanged(write):
    m = attention_model(write, 128, 8)
    plain = write(open(m).read().replace("- {name: attn, op: attention, in: [q, k, v], heads: 8}",
                                         "- {name: attn, op: linear, in: q, out_features: 1024, bias: false}"),
                  "gemm.yaml")
    a = run(plain, chip_file(write), terms=NO_POWER, stack="eager").time_s
    b = run(plain, chip_file(write, "per_core: {special_function: 16}\n"), terms=NO_POWER, stack="eager").time_s
    assert a == b
    # the term belongs to fused attention: with the attention term off, the exponentials go too
    no_attention = Terms.without({"power", "attention"})
    a = run(m, chip_file(write), terms=no_attention, stack="eager").time_s
    b = run(m, chip_file(write, "per_core: {special_function: 16}\n"), terms=no_attention, stack="eager").time_s
    assert a == b


# ------------------------------------------------------------------------------ the fields, as a user meets them

def test_setting_the_new_fields_changes_attention_and_is_not_reported_as_ignored(write):
    from simulator.simulate import field_warnings
    base = run("flux1-dev", "h100", {"steps": 2}, stack="eager")
    for over in ({"per_core.special_function": 1.0}, {"efficiency.softmax_overlap.flash": 0.5}):
        r = run("flux1-dev", "h100", {"steps": 2}, over, stack="eager")
        assert r.time_s != base.time_s
        assert not [w for w in field_warnings(r, over) if "does not change" in w]
    # a model without fused attention does not read them: that is said
    plain = write(open(attention_model(write, 128, 8)).read().replace(
        "- {name: attn, op: attention, in: [q, k, v], heads: 8}",
        "- {name: attn, op: linear, in: q, out_features: 1024, bias: false}"), "gemm2.yaml")
    over = {"per_core.special_function": 1.0}
    r = run(plain, "h100", hw_overrides=over, stack="eager")
    assert [w for w in field_warnings(r, over) if "per_core.special_function does not change" in w]


def test_an_overlap_without_exponentials_or_for_a_back_end_the_device_lacks_is_reported(write):
    from simulator.fields import unread
    from simulator.hardware import load_hardware
    no_sfu = write(CHIP.replace("efficiency: {attention: 1.0,", "efficiency: {attention: 1.0, softmax_overlap: "
                                "{flash: 0.5, fa9: 0.2},"), "overlap.yaml")
    notes = unread(load_hardware(no_sfu).spec)
    assert any("softmax_overlap.flash: read only with per_core.special_function" in n for n in notes)
    with_sfu = write(open(no_sfu).read() + "per_core: {special_function: 16}\n", "overlap2.yaml")
    notes = unread(load_hardware(with_sfu).spec)
    assert any("softmax_overlap.fa9: the device runs no fused-attention back-end" in n for n in notes)
    assert not any("softmax_overlap.flash" in n for n in notes)


@pytest.mark.parametrize("field, value", [("efficiency.softmax_overlap.fa3", "1.5"),
                                          ("per_core.special_function", "-1"), ("per_core.special_function", "abc")])
def test_bad_values_of_the_new_fields_are_one_line_errors(field, value):
    from conftest import run_cli
    code, out, err = run_cli("run", "sd15", "--hardware", "h100", "--hw-set", f"{field}={value}")
    assert code == 2 and not out and err.count("\n") == 1 and "Traceback" not in err


def test_a_fitted_dict_value_at_its_bound_is_flagged_in_the_written_file():
    from simulator.fidelity import fitted_yaml
    text = fitted_yaml({"hardware": "h100", "train_rows": 10, "loss_before": 0.1, "loss_after": 0.05,
                        "parameters": {"efficiency.softmax_overlap.flash": 0.0, "efficiency.softmax_overlap.fa3": 0.3,
                                       "efficiency.matrix": 0.8},
                        "at_bound": ["efficiency.softmax_overlap.flash"]}, "rows.csv", "today")
    line = next(t for t in text.splitlines() if t.strip().startswith("softmax_overlap"))
    assert line.endswith("# at the bound of its prior range: flash") and "fa3: 0.3" in line


def test_a_bad_value_of_a_dict_field_names_its_key(write):
    """The error names the key inside the mapping, from --hw-set and from a file's flow mapping alike."""
    from conftest import run_cli
    code, _, err = run_cli("run", "sd15", "--hardware", "h100", "--hw-set", "efficiency.softmax_overlap.fa3=1.5")
    assert code == 2 and "--hw-set efficiency.softmax_overlap.fa3=1.5" in err
    child = write("inherit: h100\nefficiency:\n  softmax_overlap: {fa3: 1.7, cudnn: 0.4}\n", "child.yaml")
    code, _, err = run_cli("run", "sd15", "--hardware", child)
    # the child's own `efficiency:` line (an inherited file's nested mappings keep the line of their parent key)
    assert code == 2 and err.count("\n") == 1 and f"{child}:2: efficiency.softmax_overlap.fa3:" in err

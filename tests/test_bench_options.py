"""The --cnnbench-* options (plugin loaded by its entry point): bad values are usage errors."""

import pytest


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--cnnbench-archs=model_9", "unknown architecture(s) ['model_9']; valid: model_1_a"),
        ("--cnnbench-seeds=a", "seeds are comma-separated non-negative integers"),
        ("--cnnbench-seeds=1,1", "seeds must be distinct"),
        ("--cnnbench-seeds=4294967296", "a seed is an integer from 0 to 4294967295"),
        (
            "--cnnbench-budget=huge",
            "invalid choice: 'huge' (choose from 'smoke', 'ci', 'small', 'full')",
        ),
        ("--cnnbench-precision=fp8", "invalid choice: 'fp8'"),
        ("--cnnbench-backend=mxnet", "invalid choice: 'mxnet'"),
        ("--cnnbench-regen", "regenerating a baseline needs at least 2 seeds"),
    ],
)
def test_bad_option_values_are_usage_errors(pytester, option, message):
    result = pytester.runpytest_subprocess(option)
    assert result.ret in (pytest.ExitCode.USAGE_ERROR, 2)
    assert message in result.stderr.str()


def test_regenerating_with_a_planted_regression_is_refused(pytester):
    result = pytester.runpytest_subprocess(
        "--cnnbench-regen", "--cnnbench-seeds=0,1", "--cnnbench-plant=lr0"
    )
    assert "would store it" in result.stderr.str()


def test_options_are_listed_in_one_group(pytester):
    result = pytester.runpytest_subprocess("--help")
    text = result.stdout.str()
    assert "CNN MNIST benchmarks and regression gate:" in text
    for name in (
        "budget",
        "archs",
        "seeds",
        "backend",
        "precision",
        "gate",
        "regen",
        "plant",
        "out",
        "data",
        "baselines",
        "epochs",
        "train-samples",
    ):
        assert f"--cnnbench-{name}" in text


def test_honest_planted_and_other_precision_runs_never_share_a_folder(tmp_path):
    from bench.cli.options import Settings
    from bench.cli.plugin import BenchSession

    def folder(**given):
        settings = Settings.parse(lambda dest: {"out": tmp_path, **given}.get(dest))
        return BenchSession(settings, settings.request(), gate=None).run_dir("ci", "model_1_a", 0)

    honest = folder(precision="float32")
    others = [
        folder(precision="float32", plant="lr0"),
        folder(precision="mixed_bfloat16"),
        folder(precision="float32", plant="slow-step:0.1"),
    ]
    assert len({honest, *others}) == 4
    assert honest.parent.name.endswith("-float32") and honest.name == "seed0"

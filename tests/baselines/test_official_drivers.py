"""The official-code drivers' shared ground, run through the worker protocol: AnyDoor's driver against a
stand-in checkout of ali-vilab/AnyDoor 44ca2b2, the pre-flight (`fsmi doctor --method`, the start of
`fsmi run`), and the workers' offline environment. Each other driver has its own file
(test_largen_driver.py, test_smartedit_driver.py, test_instructany2pix_driver.py).

A stand-in mirrors the official repository's module paths, class and function names, signatures and
return types and the released checkpoints' folder layout, with tiny files instead of models
(tests/support/official_checkouts.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from baselines.worker_protocol import DRIVERS_DIR, OFFLINE_ENV
from fsmi_bench.errors import MissingWeightsError
from tests.support.official_checkouts import (
    LOGGER,
    doctor,
    failing_lines,
    make_request,
    read_calls,
    run_requests,
    write_files,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_workers_run_offline_and_use_this_trees_drivers(tmp_path):
    from baselines.anydoor import AnyDoor

    checkout = anydoor_checkout(tmp_path)
    method = AnyDoor({"python": sys.executable, "checkout": str(checkout), "env": {"TRANSFORMERS_OFFLINE": "0"}})
    spec = method.worker_spec()
    assert Path(spec.driver) == (REPO_ROOT / "baselines" / "drivers" / "anydoor_driver.py").resolve()
    assert DRIVERS_DIR.resolve() == (REPO_ROOT / "baselines" / "drivers").resolve()
    assert spec.env["HF_HUB_OFFLINE"] == "1" and spec.env["TRANSFORMERS_OFFLINE"] == "0"  # the config may say otherwise
    assert set(OFFLINE_ENV) <= set(spec.env)


# -- AnyDoor --------------------------------------------------------------------------------------

def anydoor_checkout(root: Path, dinov2=True) -> Path:
    checkout = root / "AnyDoor"
    files = {
        "configs/inference.yaml": "pretrained_model: path/epoch=1-step=8687.ckpt\nconfig_file: configs/anydoor.yaml\n"
                                  "save_memory: False\n",
        "configs/anydoor.yaml": "model:\n  params:\n    cond_stage_config:\n"
                                "      target: ldm.modules.encoders.modules.FrozenDinoV2Encoder\n"
                                "      weight: path/dinov2_vitg14_pretrain.pth\n",
        "path/epoch=1-step=8687.ckpt": b"ckpt",
        "logger.py": LOGGER,
        # run_inference.py loads the model at import from ./configs/inference.yaml, as the official one does
        "cldm/__init__.py": "",
        "cldm/model.py": "def create_model(config_path):\n    raise RuntimeError('builds the model')\n",
        "run_inference.py": '''
            import numpy as np
            import yaml
            from cldm.model import create_model
            from logger import log

            config = yaml.safe_load(open('./configs/inference.yaml'))
            model_ckpt = config['pretrained_model']
            log(event="load", pretrained_model=model_ckpt, ckpt_bytes=open(model_ckpt, 'rb').read().decode())

            def inference_single_image(ref_image, ref_mask, tar_image, tar_mask, guidance_scale = 5.0):
                # the official process_pairs: the reference is whitened outside ref_mask
                ref_mask_3 = np.stack([ref_mask, ref_mask, ref_mask], -1)
                masked_ref_image = ref_image * ref_mask_3 + np.ones_like(ref_image) * 255 * (1 - ref_mask_3)
                log(event="edit", ref_mask=np.asarray(ref_mask).tolist(), tar_mask=np.asarray(tar_mask).tolist(),
                    guidance_scale=guidance_scale, ref_shape=list(ref_image.shape), noise=float(np.random.rand()))
                gen_image = tar_image.copy()
                rows, cols = np.nonzero(tar_mask)
                gen_image[rows.min():rows.max() + 1, cols.min():cols.max() + 1] = \\
                    masked_ref_image.reshape(-1, 3).mean(0).astype(np.uint8)
                return gen_image
        ''',
    }
    if dinov2:
        files["path/dinov2_vitg14_pretrain.pth"] = b"dino"
    write_files(checkout, files)
    return checkout


def test_anydoor_gets_the_subjects_true_mask_as_its_reference_mask(tmp_path):
    from baselines.anydoor import AnyDoor

    checkout = anydoor_checkout(tmp_path)
    request = make_request()
    method = AnyDoor({"python": sys.executable, "checkout": str(checkout), "guidance_scale": 4.0})
    assert method.weights() == {"anydoor": str(checkout / "path" / "epoch=1-step=8687.ckpt")}
    output, = run_requests(method, request)
    load, edit = read_calls(checkout)
    assert load["pretrained_model"] == "path/epoch=1-step=8687.ckpt" and load["ckpt_bytes"] == "ckpt"
    np.testing.assert_array_equal(np.array(edit["ref_mask"], dtype=bool), request.subject_mask)
    assert edit["guidance_scale"] == 4.0 and edit["ref_shape"] == [20, 16, 3]
    box = np.zeros_like(request.mask)
    box[10:22, 14:30] = True
    np.testing.assert_array_equal(np.array(edit["tar_mask"], dtype=bool), box)
    assert output.shape == request.scene.shape
    np.testing.assert_array_equal(output[~box], request.scene[~box])
    # only the subject's own pixels, not its background, reach the pasted colour
    subject_mean = request.subject[request.subject_mask].mean(0)
    whitened = np.where(request.subject_mask[..., None], request.subject, 255).reshape(-1, 3).mean(0)
    np.testing.assert_array_equal(output[box][0], whitened.astype(np.uint8))
    assert not np.allclose(whitened, request.subject.reshape(-1, 3).mean(0)) and subject_mean.shape == (3,)


def test_anydoor_without_a_subject_mask_uses_the_whole_subject_and_seeds_numpy(tmp_path):
    from baselines.anydoor import AnyDoor

    checkout = anydoor_checkout(tmp_path)
    method = AnyDoor({"python": sys.executable, "checkout": str(checkout)})
    run_requests(method, make_request(subject_mask=False, seed=5), make_request(subject_mask=False, seed=5))
    first, second = read_calls(checkout)[1:]
    assert np.array(first["ref_mask"]).all() and first["guidance_scale"] == 5.0
    assert first["noise"] == second["noise"]  # seeded from the case


def test_anydoor_missing_dinov2_fails_at_start_with_one_line(tmp_path):
    from baselines.anydoor import AnyDoor

    checkout = anydoor_checkout(tmp_path, dinov2=False)
    method = AnyDoor({"python": sys.executable, "checkout": str(checkout)})
    with pytest.raises(MissingWeightsError) as caught:
        run_requests(method, make_request())
    message = str(caught.value)
    assert "dinov2_vitg14_pretrain.pth" in message and "\n" not in message and "Traceback" not in message
    assert read_calls(checkout) == []  # failed before the official module loaded anything
    failing = [item.detail for item in method.preflight() if item.status == "fail"]
    assert len(failing) == 1 and "dinov2_vitg14_pretrain.pth" in failing[0]


# -- pre-flight: `fsmi doctor --method` and the start of `fsmi run` --------------------------------

def test_doctor_passes_a_complete_checkout_and_lists_every_check(tmp_path):
    checkout = anydoor_checkout(tmp_path)
    code, lines = doctor({"python": sys.executable, "checkout": str(checkout)}, tmp_path, "anydoor")
    assert code == 0, lines
    assert lines[-1] == "anydoor: ready" and failing_lines(lines) == []
    text = "\n".join(lines)
    for checked in ("official code run_inference.py", "epoch=1-step=8687.ckpt", "configs/anydoor.yaml",
                    "dinov2_vitg14_pretrain.pth", "offline mode", f"python {sys.executable}"):
        assert checked in text, checked
    gpu, = [line for line in lines if "GPU memory" in line]
    assert "16 GiB" in gpu and "estimate" in gpu  # no GPU here: reported, not failed


def _without_dinov2(checkout: Path, config: dict) -> str:
    (checkout / "path" / "dinov2_vitg14_pretrain.pth").unlink()
    return "dinov2_vitg14_pretrain.pth"


def _without_cldm(checkout: Path, config: dict) -> str:
    import shutil

    shutil.rmtree(checkout / "cldm")  # an incomplete checkout: run_inference.py imports cldm.model
    return "imports cldm"


def _without_checkout(checkout: Path, config: dict) -> str:
    config["checkout"] = str(checkout.parent / "not-cloned")
    return "not-cloned"


def _with_downloads_allowed(checkout: Path, config: dict) -> str:
    config["env"] = {"HF_HUB_OFFLINE": "0"}
    return "HF_HUB_OFFLINE='0'"


def _without_python(checkout: Path, config: dict) -> str:
    config["python"] = str(checkout.parent / "envs" / "anydoor" / "bin" / "python")
    return "envs/anydoor/bin/python"


@pytest.mark.parametrize("remove", [_without_dinov2, _without_cldm, _without_checkout, _with_downloads_allowed,
                                    _without_python], ids=lambda function: function.__name__[1:])
def test_doctor_names_each_missing_piece_in_one_line_and_exits_2(tmp_path, remove):
    checkout = anydoor_checkout(tmp_path)
    config = {"python": sys.executable, "checkout": str(checkout)}
    named = remove(checkout, config)
    code, lines = doctor(config, tmp_path, "anydoor")
    failing = failing_lines(lines)
    assert code == 2 and len(failing) == 1 and named in failing[0], lines
    assert lines[-1] == "anydoor: not ready, 1 problem"


@pytest.mark.parametrize("free_gib, status", [(8.0, "fail"), (20.0, "ok")])
def test_gpu_memory_is_checked_against_the_drivers_figure(tmp_path, free_gib, status):
    from baselines.anydoor import AnyDoor

    checkout = anydoor_checkout(tmp_path)
    fake_gpu = {"cuda": True, "name": "Fake GPU", "free_bytes": int(free_gib * 2**30), "total_bytes": 24 * 2**30}
    items = AnyDoor({"python": sys.executable, "checkout": str(checkout)}).preflight(gpu=fake_gpu)
    gpu, = [item for item in items if item.item == "GPU memory"]
    assert gpu.status == status and f"{free_gib:.1f} GiB free of 24.0 GiB" in gpu.detail
    assert "16 GiB" in gpu.detail and "estimate, not measured" in gpu.detail
    assert [item.status for item in items if item is not gpu] == ["ok"] * (len(items) - 1)


def test_run_stops_before_any_case_and_any_model_load_with_one_line(tmp_path):
    import time

    from click.testing import CliRunner

    from fsmi_bench.cli import main
    from tests.support.run_fixtures import make_benchmark

    bench = make_benchmark(tmp_path / "bench", n_single=0, n_multi=2)
    checkout = anydoor_checkout(tmp_path)
    (checkout / "path" / "dinov2_vitg14_pretrain.pth").unlink()
    config_path = tmp_path / "anydoor.json"
    config_path.write_text(json.dumps({"python": sys.executable, "checkout": str(checkout)}))
    started = time.perf_counter()
    result = CliRunner().invoke(main, ["run", "--method", "anydoor", "--bench", str(bench), "--out",
                                       str(tmp_path / "run"), "--config", str(config_path), "--no-progress"])
    elapsed = time.perf_counter() - started
    assert result.exit_code == 2 and "Traceback" not in result.output
    error, = [line for line in result.output.splitlines() if line.strip()]
    assert "anydoor is not ready" in error and "dinov2_vitg14_pretrain.pth" in error and "fsmi doctor" in error
    assert elapsed < 30 and read_calls(checkout) == []  # nothing loaded, no case started
    assert not list((tmp_path / "run").rglob("*.png")) and not (tmp_path / "run" / "run.json").exists()


@pytest.mark.parametrize("method", ["smartedit", "anydoor"])
def test_doctor_without_a_config_says_how_to_pass_one(method):
    from click.testing import CliRunner

    from fsmi_bench.cli import main

    result = CliRunner().invoke(main, ["doctor", "--method", method])
    lines = result.output.splitlines()
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"fsmi doctor --method {method} --config {method}.json" in lines[-1] and "baselines/README.md" in lines[-1]

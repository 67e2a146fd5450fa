"""The subprocess worker protocol end to end, with test drivers run by ``sys.executable``."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

from baselines.worker_protocol import (
    WorkerClient,
    WorkerFailure,
    WorkerMethod,
    WorkerSpec,
    WorkerStartError,
    WorkerTimeout,
)
from fsmi_bench.errors import BadInputError, MissingWeightsError
from fsmi_bench.run.method import EditRequest

WORKERS = Path(__file__).with_name("workers")


def _request(case_id="multi_0001", seed=0, with_subject=True):
    rng = np.random.default_rng(seed)
    scene = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    mask = np.zeros((24, 32), dtype=bool)
    mask[4:12, 6:20] = True
    subject = rng.integers(0, 256, (10, 8, 3), dtype=np.uint8) if with_subject else None
    return EditRequest(scene=scene, subject=subject, mask=mask, instruction="add the cup", label="cup", seed=seed,
                       case_id=case_id, mask_type="circle", kind="multi", op="add")


def _spec(driver, **kwargs):
    return WorkerSpec(python=sys.executable, driver=str(WORKERS / driver), name="test-worker", **kwargs)


def _tinted(request):
    expected = request.scene.astype(np.float64)
    expected[request.mask] = 0.5 * expected[request.mask] + 0.5 * np.array([255, 0, 0])
    return np.round(expected).astype(np.uint8)


def test_good_worker_serves_many_cases_with_one_start(tmp_path):
    start_log = tmp_path / "starts.txt"
    with WorkerClient(_spec("echo_driver.py", config={"start_log": str(start_log)})) as client:
        for index in range(5):
            request = _request(case_id=f"multi_{index:04d}", seed=index, with_subject=index % 2 == 0)
            np.testing.assert_array_equal(client.edit(request), _tinted(request))
        assert client.starts == 1
    assert len(start_log.read_text().splitlines()) == 1


def test_driver_exception_fails_the_case_but_keeps_the_worker(tmp_path):
    with WorkerClient(_spec("echo_driver.py")) as client:
        with pytest.raises(WorkerFailure, match="driver refused this case"):
            client.edit(_request(case_id="driver_error"))
        request = _request(case_id="multi_0002")
        np.testing.assert_array_equal(client.edit(request), _tinted(request))
        assert client.starts == 1


def test_crash_is_a_failed_case_with_stderr_and_the_next_case_works():
    with WorkerClient(_spec("crash_driver.py", config={"crash_on": "multi_0002"})) as client:
        first = client.edit(_request(case_id="multi_0001"))
        assert first.shape == (24, 32, 3)
        with pytest.raises(WorkerFailure) as caught:
            client.edit(_request(case_id="multi_0002"))
        message = str(caught.value)
        assert "exit code 7" in message and "simulated fatal error on multi_0002" in message
        assert not isinstance(caught.value, WorkerTimeout)
        request = _request(case_id="multi_0003")
        output = client.edit(request)
        expected = request.scene.copy()
        expected[request.mask] = 255 - expected[request.mask]
        np.testing.assert_array_equal(output, expected)
        assert client.starts == 2


def test_hang_is_killed_after_the_timeout_and_the_next_case_works():
    with WorkerClient(_spec("hang_driver.py", config={"hang_on": "multi_0002"}, case_timeout_s=2)) as client:
        client.edit(_request(case_id="multi_0001"))
        process = client._process
        started = time.monotonic()
        with pytest.raises(WorkerTimeout, match="within 2 s"):
            client.edit(_request(case_id="multi_0002"))
        assert 2 <= time.monotonic() - started < 6
        assert process.poll() is not None, "the hung worker must be dead"
        request = _request(case_id="multi_0003")
        np.testing.assert_array_equal(client.edit(request), request.scene)
        assert client.starts == 2


def test_startup_failures_are_clear(tmp_path):
    missing = tmp_path / "model.ckpt"
    with pytest.raises(MissingWeightsError, match="model.ckpt"):
        WorkerClient(_spec("echo_driver.py", config={"require_file": str(missing)})).start()
    with pytest.raises(WorkerStartError, match="config key 'python'"):
        WorkerClient(WorkerSpec(python=str(tmp_path / "no-python"), driver=str(WORKERS / "echo_driver.py"))).start()
    broken = tmp_path / "broken_driver.py"
    broken.write_text("import not_a_module_anywhere\n")
    with pytest.raises(WorkerStartError, match="not_a_module_anywhere"):
        WorkerClient(WorkerSpec(python=sys.executable, driver=str(broken))).start()


def test_the_worker_runs_the_drivers_checklist_before_load(tmp_path):
    # load would leave a mark if it ran: a missing piece must stop the worker before it, in one line.
    marker = tmp_path / "load-ran"
    driver = tmp_path / "checked_driver.py"
    driver.write_text(
        "import os\n"
        "def checklist(config):\n"
        "    return [['weights', None if os.path.isfile(config['weights']) else config['weights'] + ' is missing'],\n"
        "            ['helper', None]]\n"
        f"def load(config):\n    open({str(marker)!r}, 'w').close()\n    return {{}}\n"
        "def edit(state, request, scene, mask, subject):\n    return scene\n")
    missing = tmp_path / "weights.safetensors"
    with pytest.raises(MissingWeightsError) as raised:
        WorkerClient(WorkerSpec(python=sys.executable, driver=str(driver), name="checked",
                                config={"weights": str(missing)})).start()
    assert str(raised.value) == f"checked: {missing} is missing" and not marker.exists()


def test_close_stops_the_worker_and_removes_the_exchange_folder():
    client = WorkerClient(_spec("echo_driver.py"))
    client.edit(_request())
    process, root = client._process, client._root
    client.close()
    assert process.poll() is not None
    assert not root.exists()


class _EchoMethod(WorkerMethod):
    name = "echo-worker"
    driver_file = "unused.py"
    checkout_marker = "run_inference.py"
    weight_keys = ("weights",)


def test_worker_method_checks_its_config_and_maps_back_to_the_scene_size(tmp_path):
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    weights = tmp_path / "model.ckpt"
    weights.write_bytes(b"x")
    with pytest.raises(BadInputError, match="'python'"):
        _EchoMethod({}).setup()
    with pytest.raises(BadInputError, match="run_inference.py"):
        _EchoMethod({"python": sys.executable, "checkout": str(checkout)}).setup()
    (checkout / "run_inference.py").write_text("")
    with pytest.raises(MissingWeightsError, match="'weights'"):
        _EchoMethod({"python": sys.executable, "checkout": str(checkout)}).setup()
    method = _EchoMethod({"python": sys.executable, "checkout": str(checkout), "weights": str(weights),
                          "driver": str(WORKERS / "echo_driver.py")})
    try:
        method.setup()
        request = _request()
        np.testing.assert_array_equal(method.edit(request), _tinted(request))
        assert method.weights() == {"weights": str(weights)}
        assert method.client.spec.cwd == str(checkout.resolve())
    finally:
        method.close()


def _driver_module(name):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[2] / "baselines" / "drivers" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_anydoor_reduces_the_mask_to_its_bounding_box():
    mask = np.zeros((10, 12), dtype=bool)
    mask[2, 3] = mask[6, 9] = True
    box = _driver_module("anydoor_driver").bounding_box_mask(mask)
    assert box.dtype == np.uint8 and box.sum() == 5 * 7 and box[2:7, 3:10].all()


@pytest.mark.parametrize("width, height, box", [(56, 40, (8, 0, 40)), (40, 56, (0, 8, 40)), (30, 30, (0, 0, 30)),
                                                 (1000, 10, (495, 0, 10))])
def test_instructany2pix_finds_the_square_its_pipeline_keeps(width, height, box):
    # resize_and_crop(img, (1024, 1024), 'middle'), pipeline.py l.41-88: e.g. 56 x 40 -> 1433 x 1024, the crop
    # starts at round(204.5) = 204 of 1433, column 8 of 56
    from PIL import Image

    assert _driver_module("instructany2pix_driver").centre_crop_box(width, height) == box
    scene = np.zeros((height, width), dtype=np.uint8)
    left, top, size = box
    scene[top:top + size, left:left + size] = 255
    short = min(width, height)
    scaled = Image.fromarray(scene).resize((int(1024 * width / short), int(1024 * height / short)),
                                           Image.Resampling.NEAREST)
    middle = np.asarray(scaled.crop(((scaled.size[0] - 1024) / 2, (scaled.size[1] - 1024) / 2,
                                     (scaled.size[0] + 1024) / 2, (scaled.size[1] + 1024) / 2)))
    margin = 1024 // short + 1  # one scene pixel
    assert middle[margin:-margin, margin:-margin].min() == 255  # the square the pipeline keeps is the box found


@pytest.mark.parametrize("module_name, class_name", [
    ("baselines.anydoor", "AnyDoor"), ("baselines.largen", "Largen"),
    ("baselines.smartedit", "SmartEdit"), ("baselines.instructany2pix", "InstructAny2Pix"),
])
def test_official_adapters_say_which_config_key_to_set(module_name, class_name, tmp_path):
    import importlib

    method_class = getattr(importlib.import_module(module_name), class_name)
    with pytest.raises(BadInputError, match="'python'"):
        method_class({}).setup()
    with pytest.raises(BadInputError, match="'checkout'"):
        method_class({"python": sys.executable}).setup()
    with pytest.raises(BadInputError, match=method_class.checkout_marker):
        method_class({"python": sys.executable, "checkout": str(tmp_path)}).setup()
    marker = tmp_path / method_class.checkout_marker
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("")
    if method_class.weight_keys:
        with pytest.raises(MissingWeightsError, match=repr(method_class.weight_keys[0])):
            method_class({"python": sys.executable, "checkout": str(tmp_path)}).setup()
    if class_name == "AnyDoor":
        (tmp_path / "configs").mkdir()
        (tmp_path / "configs" / "inference.yaml").write_text("pretrained_model: ckpt/missing.ckpt\n")
        with pytest.raises(MissingWeightsError, match="missing.ckpt"):
            method_class({"python": sys.executable, "checkout": str(tmp_path)}).setup()


def test_the_subject_mask_reaches_the_driver(tmp_path):
    driver = tmp_path / "subject_mask_driver.py"
    driver.write_text(
        "import numpy as np\n"
        "def load(config):\n    return None\n"
        "def edit(state, request, scene, mask, subject):\n"
        "    subject_mask = request['subject_mask']\n"
        "    output = np.zeros(scene.shape, np.uint8)\n"
        "    if subject_mask is not None:\n"
        "        output[:subject_mask.shape[0], :subject_mask.shape[1]] = subject_mask[..., None] * 255\n"
        "    return output\n")
    request = _request()
    subject_mask = np.zeros(request.subject.shape[:2], dtype=bool)
    subject_mask[2:7, 1:5] = True
    from dataclasses import replace

    with WorkerClient(WorkerSpec(python=sys.executable, driver=str(driver))) as client:
        output = client.edit(replace(request, subject_mask=subject_mask))
        np.testing.assert_array_equal(output[:10, :8, 0] > 0, subject_mask)
        assert not client.edit(request).any()  # no subject mask: the driver gets None

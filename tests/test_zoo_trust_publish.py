"""``qatzoo publish RUN --sign KEY`` on a real (tiny) run: a bundle beside each version, the zoo's TUF metadata
re-signed with each publish, a signed zoo refused an unsigned publish, and a client verifying what was published."""

from __future__ import annotations

import json
import shutil

import pytest

from qatzoo.cli import main
from qatzoo.zoo import keys
from tests.zoo_server import ZooServer

TINY = ["schedule.float_epochs=1", "schedule.qat_epochs=1", "trainer.verbose=0", "trainer.representative_samples=32"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, data_dir):
    from qatzoo.config import compose
    from qatzoo.train.trainer import train

    cfg = compose(["recipe=mnist_cnn_int8", "data=mnist_5k", f"paths.data_dir={data_dir}", *TINY])
    out = tmp_path_factory.mktemp("run")
    train(cfg, out)
    return out


def _cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_publish_sign_bundles_each_version_and_re_signs_the_zoo(run_dir, tmp_path, data_dir, capsys, monkeypatch):
    from tuf.api.metadata import Metadata

    monkeypatch.setenv("QATZOO_CACHE", str(tmp_path / "cache"))
    private, public = keys.new(tmp_path / "key")
    zoo = tmp_path / "zoo"
    publish = ["publish", run_dir, "--name", "tiny", "--zoo", zoo, "--data-dir", data_dir]

    loose = tmp_path / "loose.pem"  # checked before minutes of measuring
    shutil.copyfile(private, loose)
    loose.chmod(0o644)
    code, _, err = _cli(capsys, *publish, "--sign", loose)
    assert code == 2 and "chmod 600" in err and not zoo.exists()

    code, out, err = _cli(capsys, *publish, "--sign", private)
    assert code == 0 and "published tiny@1" in out and "signed" in out, err
    folder = zoo / "tiny" / "1"
    assert (folder / "model.sig").is_file()
    code, out, _ = _cli(
        capsys, "verify", folder / "model_int8.tflite", "--bundle", folder / "model.sig", "--key", public
    )
    assert code == 0 and "model_int8.tflite, contract.json, card.md" in out

    assert _cli(capsys, *publish, "--sign", private)[0] == 0  # tiny@2: every version stays a target
    meta = zoo / "metadata"
    timestamp = Metadata.from_file(str(meta / "timestamp.json")).signed
    assert timestamp.version == 2
    targets = Metadata.from_file(str(meta / "2.targets.json")).signed.targets
    assert {"index.json", "tiny/1/model.sig", "tiny/2/model.sig", "tiny/2/model_int8.tflite"} <= set(targets)

    code, _, err = _cli(capsys, *publish)  # unsigned into a signed zoo: its clients would refuse the new index
    assert code == 2 and "--sign KEY" in err.strip().splitlines()[-1]
    assert [e["version"] for e in json.loads((zoo / "index.json").read_text())["models"]] == ["1", "2"]

    with ZooServer(zoo) as server:
        url = f"{server.url}/index.json"
        code, out, err = _cli(capsys, "download", "tiny@1", "--index", url, "--trust", meta / "1.root.json")
        assert code == 0 and err == "", err

"""autograder/runners/slurm_grade.sbatch on a real Slurm: a one-node cluster (munged, slurmctld,
slurmd from Debian's packages) started on localhost, a job array of 2 shards (one grading two submissions, one grading one) over catalogue
submissions, joined by ``summarize``: the grades are those of one run on one machine with the same
seed. Skipped, saying why, where Slurm is not installed (``apt-get install slurmctld slurmd
slurm-client munge``) or the test does not run as root (slurmd needs it)."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autograder.__main__ import main
from autograder.catalogue import write_submissions

REPO = Path(__file__).resolve().parents[2]
SBATCH = REPO / "autograder" / "runners" / "slurm_grade.sbatch"
TOOLS = ["munged", "slurmctld", "slurmd", "sbatch", "sinfo"]
# one per shard: the reference and three mistakes the shards must grade as one machine does
STUDENTS = ["reference", "fcn8s_skip_offsets_swapped", "copy_params_forgets_fc7"]  # shard 0 grades two, shard 1 one

missing = [t for t in TOOLS if shutil.which(t) is None]
pytestmark = [
    pytest.mark.skipif(bool(missing), reason=f"Slurm is not installed ({', '.join(missing)} missing): "
                                             f"apt-get install slurmctld slurmd slurm-client munge"),
    pytest.mark.skipif(os.geteuid() != 0, reason="slurmd runs jobs as their user and needs root"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CONF = """ClusterName=fcnkit-test
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
AuthType=auth/munge
AuthInfo=socket={root}/munge/munge.socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=8000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A one-node Slurm on localhost, its own munge key and ports; stopped afterwards."""
    root = tmp_path_factory.mktemp("slurm")
    for folder in ("munge", "state", "spool"):
        (root / folder).mkdir()
    (root / "munge").chmod(0o700)
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    conf = root / "slurm.conf"
    conf.write_text(CONF.format(root=root, ctld_port=free_port(), d_port=free_port(), cpus=os.cpu_count()))
    env = {**os.environ, "SLURM_CONF": str(conf), "PYTHONPATH": os.pathsep.join(filter(None, [
        str(REPO), os.environ.get("PYTHONPATH")])), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    daemons = [subprocess.Popen(["munged", "-F", "-f", f"--key-file={key}", f"--socket={root}/munge/munge.socket",
                                 f"--pid-file={root}/munge/munged.pid", f"--log-file={root}/munge/munged.log",
                                 f"--seed-file={root}/munge/munged.seed"], env=env)]
    try:
        for _ in range(50):
            if (root / "munge" / "munge.socket").exists():
                break
            time.sleep(0.1)
        daemons.append(subprocess.Popen(["slurmctld", "-D", "-i", "-f", str(conf)], env=env))
        time.sleep(1)
        daemons.append(subprocess.Popen(["slurmd", "-D", "-N", "localhost", "-f", str(conf)], env=env))
        for _ in range(60):
            state = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True).stdout.strip()
            if state == "idle":
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"the one-node Slurm did not come up (node state {state!r}); see {root}/slurmctld.log and "
                        f"{root}/slurmd.log")
        yield env, root
    finally:
        for daemon in reversed(daemons):
            daemon.terminate()
            try:
                daemon.wait(10)
            except subprocess.TimeoutExpired:
                daemon.kill()


@pytest.mark.slow
def test_a_job_array_of_two_shards_grades_as_one_machine_does(cluster, tmp_path, capsys):
    env, root = cluster
    flat, course = tmp_path / "flat", tmp_path / "course"
    write_submissions(flat, STUDENTS)
    for path in flat.iterdir():
        (course / path.stem / "fcn_segmentation").mkdir(parents=True)
        shutil.copy(path, course / path.stem / "fcn_segmentation" / "fcn_segmentation.py")
    start = time.perf_counter()
    job = subprocess.run(["sbatch", "--wait", "--array=0-1", "--cpus-per-task=1", "--mem=2000",
                          f"--output={tmp_path}/grade-%A_%a.log", str(SBATCH), str(course), "--seed", "7"],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    array_seconds = time.perf_counter() - start
    logs = "\n".join(p.read_text() for p in sorted(tmp_path.glob("grade-*.log")))
    assert job.returncode == 0, job.stdout + job.stderr + logs
    reports = course / "grading-reports"
    assert sorted(p.name for p in reports.glob("grades-*-of-2.csv")) == [f"grades-{k}-of-2.csv" for k in range(2)]
    assert main(["summarize", str(reports)]) == 0
    assert main(["grade", str(course), "--out", str(tmp_path / "one"), "--seed", "7", "--jobs", "2"]) == 0

    def grades(folder: Path) -> dict:
        return {r["student"]: [(c["name"], c["status"], c["score"], c["message"]) for c in r["checks"]]
                for r in map(json.loads, map(Path.read_text, sorted(folder.glob("*.json"))))}
    sharded, single = grades(reports), grades(tmp_path / "one")
    assert sorted(sharded) == sorted(STUDENTS)
    assert sharded == single
    assert (reports / "grades.csv").read_text() == (tmp_path / "one" / "grades.csv").read_text()
    assert (reports / "index.html").is_file()
    with capsys.disabled():
        print(f"\n[slurm] job array of 2 shards over {len(STUDENTS)} submissions on a one-node Slurm "
              f"({os.cpu_count()} CPUs): {array_seconds:.0f} s from sbatch to the last task's end")

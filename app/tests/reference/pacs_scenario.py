#!/usr/bin/env python3
"""Focal against a real Orthanc kept on loopback (app/tests/pacs.rs runs this and checks what it
reports):

1. inside a private network namespace (only `lo`), start Debian's Orthanc with a test config:
   DIMSE on 127.0.0.1:4242, HTTP on 127.0.0.1:8042 (only to upload the sample and to look at what
   it holds), Focal's AE title registered, the called AE title checked;
2. upload the sample study through Orthanc's REST API (not through Focal);
3. run `focal pacs` as a user would: add nodes, echo, find by patient, date and modality,
   series of the study, get the study into a cache, `focal info` and `focal analyze` on what
   arrived, export (identified, to go back under the same study) and store SEG, Parametric Map
   and Encapsulated PDF, then find them; C-MOVE to Focal's own storage SCP; `focal batch` over a
   CSV naming the node and study; a wrong AE title and a closed port; a retrieve through
   a link that drops mid-transfer, then the same retrieve again (resume);
   Focal's retrieve is timed against dcmtk's getscu on the same study, alternating;
   a study of 1,068 instances (the sample's 89 slices twelve times over, under new UIDs) is
   retrieved with Focal's peak memory measured (GNU time);
4. stop Orthanc, and print a JSON report on the last line of stdout.

usage: pacs_scenario.py FOCAL SAMPLE_DIR OUT_DIR   (re-runs itself under `unshare -rn`)
"""
import glob
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(ROOT, "cluster"))

from focal_ray import loopback  # noqa: E402

DIMSE_PORT, HTTP_PORT, CLOSED_PORT, DROP_PORT = 4242, 8042, 4299, 4243
DROP_AFTER = 2_000_000  # bytes from the server before the dropping link cuts both ways


def http(path, data=None):
    req = urllib.request.Request(f"http://127.0.0.1:{HTTP_PORT}{path}", data=data, method="POST" if data else "GET")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def start_orthanc(work, extra=None, ready=lambda: http("/system"), name="orthanc"):
    """Starts Orthanc with the test config (updated by `extra`) and waits until `ready()` answers."""
    db = os.path.join(work, f"{name}-db")
    os.makedirs(db, exist_ok=True)
    config = {
        "Name": "FocalTest",
        "StorageDirectory": db,
        "IndexDirectory": db,
        "DicomAet": "ORTHANC",
        "DicomPort": DIMSE_PORT,
        "HttpPort": HTTP_PORT,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomCheckCalledAet": True,
        "DicomModalities": {"focal": ["FOCAL", "127.0.0.1", 11112]},
        "StorageCompression": False,
        "Plugins": [],
    }
    config.update(extra or {})
    path = os.path.join(work, f"{name}.json")
    with open(path, "w") as fh:
        json.dump(config, fh)
    log = open(os.path.join(work, f"{name}.log"), "w")
    proc = subprocess.Popen(["Orthanc", path], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while True:
        try:
            ready()
            return proc
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                raise SystemExit(f"Orthanc did not start: {open(log.name).read()[-3000:]}")
            time.sleep(0.3)


def stop(proc):
    """Stops a server started by the scenario (terminate, then kill if it does not go)."""
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class DroppingLink:
    """A TCP relay 127.0.0.1:DROP_PORT → Orthanc that closes both sides once DROP_AFTER bytes
    have come back from the server: a node that dies mid-transfer."""

    def __init__(self, port=DROP_PORT, upstream=DIMSE_PORT, after=DROP_AFTER):
        self.port, self.upstream, self.after = port, upstream, after
        self.server = socket.create_server(("127.0.0.1", port))
        self.relayed = 0
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
            threading.Thread(target=self.pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self.pump, args=(upstream, client, True), daemon=True).start()

    def pump(self, src, dst, count):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if count:
                    self.relayed += len(data)
                    if self.relayed > self.after:
                        break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        try:
            self.server.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.server.close()


def retrieve_through_drop(focal_run, report, node, study_uid, folder, link):
    """A retrieve from `node` through `link` (closed afterwards), and what it left in `folder`:
    the names of the files and how many of them pydicom reads whole."""
    focal_run("pacs", "get", node, "--study", study_uid, "--out", folder, key="get_dropped")
    link.close()
    kept = [p for p in glob.glob(os.path.join(folder, "**", "*"), recursive=True) if os.path.isfile(p)]
    report["after_drop_files"] = sorted(os.path.basename(p) for p in kept)
    report["after_drop_readable"] = 0
    import pydicom
    for p in kept:
        if p.endswith(".dcm"):
            ds = pydicom.dcmread(p)
            if any(k in ds for k in ("PixelData", "FloatPixelData")):
                _ = ds.pixel_array
            report["after_drop_readable"] += 1


def analyse_export_store(focal_run, out, folder, node, study_uid, key):
    """Analyse the retrieved study, export it identified (to join its study) and store the SEG,
    Parametric Map and Encapsulated PDF on `node`, then find the study's series again."""
    analysis = os.path.join(out, "analysis")
    focal_run("analyze", folder, "--out", analysis, "--device", "cpu", key="analyze")
    exported = os.path.join(out, "export")
    focal_run("export", folder, "--analysis", analysis, "--out", exported, "--seg", "--pmap", "--pdf",
              "--keep-phi", key="export")
    stored = [os.path.join(exported, n) for n in ("segmentation.dcm", "attention-map.dcm", "report-pdf.dcm")]
    focal_run("pacs", "store", node, *stored, key=key)
    focal_run("pacs", "find", node, "--study", study_uid, "--json", key="find_series_after_store")


def load_retrieve(focal, env, out, sample, copies=12):
    """Uploads the sample `copies` times as one new study and retrieves it with Focal under GNU
    time; returns what arrived, the exit code and Focal's peak RSS."""
    import pydicom
    from pydicom.uid import generate_uid

    study = generate_uid()
    uploaded = 0
    for copy in range(copies):
        series = generate_uid()
        for f in sorted(glob.glob(os.path.join(sample, "*"))):
            ds = pydicom.dcmread(f)
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.SeriesNumber = 100 + copy
            buf = io.BytesIO()
            ds.save_as(buf)
            http("/instances", buf.getvalue())
            uploaded += 1
    rss = os.path.join(out, "load-rss")
    started = time.time()
    p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss, focal, "pacs", "get", "orthanc", "--study", study,
                        "--out", os.path.join(out, "bench-load"), "--json"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    summary = json.loads(p.stdout or "{}") if p.returncode == 0 else {}
    return {"uploaded": uploaded, "code": p.returncode, "seconds": round(time.time() - started, 2),
            "received": summary.get("received"), "failed": summary.get("failed"),
            "peak_rss_kb": int(open(rss).read().split()[-1]), "stderr": p.stderr[-2000:]}


def main():
    focal, sample, out = (os.path.abspath(a) for a in sys.argv[1:4])
    if loopback.interfaces() != ["lo"]:
        sys.exit(loopback.in_private_network([os.path.abspath(__file__)] + sys.argv[1:]))
    loopback.loopback_up()
    os.makedirs(out, exist_ok=True)
    env = dict(os.environ, FOCAL_CONFIG_DIR=os.path.join(out, "config"))
    report = {"steps": {}}

    def focal_run(*args, key=None, extra_env=None):
        started = time.time()
        p = subprocess.run([focal, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=dict(env, **(extra_env or {})))
        step = {"code": p.returncode, "seconds": round(time.time() - started, 3), "stdout": p.stdout[-6000:],
                "stderr": p.stderr[-3000:]}
        if key:
            report["steps"][key] = step
        return step

    orthanc = start_orthanc(out)
    try:
        uploaded = 0
        for f in sorted(glob.glob(os.path.join(sample, "*"))):
            with open(f, "rb") as fh:
                http("/instances", fh.read())
            uploaded += 1
        report["uploaded"] = uploaded
        study_uid = http(f"/studies/{http('/studies')[0]}")["MainDicomTags"]["StudyInstanceUID"]
        report["study_uid"] = study_uid

        focal_run("pacs", "add", "orthanc", "--ae", "ORTHANC", "--host", "127.0.0.1", "--port", str(DIMSE_PORT),
                  "--timeout", "10", key="add")
        focal_run("pacs", "add", "wrong-ae", "--ae", "NOT_ORTHANC", "--host", "127.0.0.1", "--port",
                  str(DIMSE_PORT), "--timeout", "10")
        focal_run("pacs", "add", "closed", "--ae", "ORTHANC", "--host", "127.0.0.1", "--port", str(CLOSED_PORT),
                  "--timeout", "10")
        focal_run("pacs", "add", "dropping", "--ae", "ORTHANC", "--host", "127.0.0.1", "--port", str(DROP_PORT),
                  "--timeout", "10")
        cfg = os.path.join(out, "config", "pacs.json")
        report["config_mode"] = oct(os.stat(cfg).st_mode & 0o777)
        report["listening"] = loopback.listening_addresses()

        focal_run("pacs", "echo", "orthanc", key="echo")
        focal_run("pacs", "find", "orthanc", "--json", key="find_all")
        focal_run("pacs", "find", "orthanc", "--patient-name", "*", "--modality", "MR", "--date", "19000101-", "--json",
                  key="find_mr_dated")
        focal_run("pacs", "find", "orthanc", "--modality", "CT", "--json", key="find_ct")
        focal_run("pacs", "find", "orthanc", "--date=-19000101", "--json", key="find_old")
        focal_run("pacs", "find", "orthanc", "--study", study_uid, "--json", key="find_series")
        focal_run("pacs", "echo", "wrong-ae", key="echo_wrong_ae")
        focal_run("pacs", "echo", "closed", key="echo_closed")

        cache = os.path.join(out, "cache")
        focal_run("pacs", "get", "orthanc", "--study", study_uid, "--out", cache, "--json", key="get")
        folder = json.loads(report["steps"]["get"]["stdout"] or "{}").get("folder", "")
        focal_run("info", folder, "--json", key="info")
        # A link that drops mid-transfer, then the same retrieve again into the same cache.
        link = DroppingLink()
        resumed = os.path.join(out, "cache-resume")
        retrieve_through_drop(focal_run, report, "dropping", study_uid, resumed, link)
        focal_run("pacs", "get", "orthanc", "--study", study_uid, "--out", resumed, "--json", key="get_resumed")

        # C-MOVE to Focal's own storage SCP (Orthanc knows FOCAL at 127.0.0.1:11112).
        focal_run("pacs", "move", "orthanc", "--study", study_uid, "--out", os.path.join(out, "cache-move"),
                  "--listen", "127.0.0.1:11112", "--json", key="move")
        report["listening_after_move"] = loopback.listening_addresses()

        # focal batch over a CSV naming the node and the study: retrieved once, then analysed;
        # a second run neither retrieves nor analyses.
        listing = os.path.join(out, "pacs-studies.csv")
        with open(listing, "w") as fh:
            fh.write(f"pacs,study_uid\northanc,{study_uid}\n")
        batch_env = {"FOCAL_CACHE": os.path.join(out, "batch-cache")}
        for key in ("batch_first", "batch_second"):
            focal_run("batch", listing, "--out", os.path.join(out, "batch"), "--device", "cpu", key=key,
                      extra_env=batch_env)
            with open(os.path.join(out, "batch", "results.csv")) as fh:
                report[key + "_table"] = fh.read()

        # Retrieve time: Focal's C-GET against dcmtk's getscu, alternating, three rounds each.
        times = {"focal": [], "getscu": []}
        for i in range(3):
            d = os.path.join(out, f"bench-focal-{i}")
            t = time.time()
            r = focal_run("pacs", "get", "orthanc", "--study", study_uid, "--out", d)
            times["focal"].append(time.time() - t if r["code"] == 0 else None)
            d = os.path.join(out, f"bench-getscu-{i}")
            os.makedirs(d)
            t = time.time()
            g = subprocess.run(["getscu", "-S", "-aet", "FOCAL", "-aec", "ORTHANC", "-k", "QueryRetrieveLevel=STUDY",
                                "-k", f"StudyInstanceUID={study_uid}", "-od", d, "127.0.0.1", str(DIMSE_PORT)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            times["getscu"].append(time.time() - t if g.returncode == 0 else None)
            report["getscu_files"] = len(os.listdir(d))
            report["getscu_output"] = g.stdout[-2000:]
        report["retrieve_seconds"] = times
        analyse_export_store(focal_run, out, folder, "orthanc", study_uid, key="store")
        report["orthanc_series_after_store"] = sorted(
            http(f"/series/{s}")["MainDicomTags"].get("Modality", "") for s in http(f"/studies/{http('/studies')[0]}")["Series"])
        report["orthanc_studies_after_store"] = len(http("/studies"))

        # Load: 1,068 instances in one study, retrieved with C-GET; Focal writes each as it
        # arrives, so its peak memory should be that of a few instances, not of the study.
        report["load"] = load_retrieve(focal, env, out, sample)

    finally:
        report["listening"] = sorted(set(report.get("listening", []) + loopback.listening_addresses()))
        stop(orthanc)
    report["after_stop"] = loopback.listening_addresses()
    # Orthanc binds its ports to every interface; in this namespace that is `lo` alone.
    report["interfaces"] = loopback.interfaces()
    report["non_loopback"] = sorted({a for a in report["listening"] if not loopback.is_loopback(a)})
    for d in glob.glob(os.path.join(out, "bench-*")) + [os.path.join(out, "orthanc-db")]:
        shutil.rmtree(d, ignore_errors=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()

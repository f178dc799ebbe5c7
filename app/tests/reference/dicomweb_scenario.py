#!/usr/bin/env python3
"""Focal's DICOMweb client against a real Orthanc with Debian's DICOMweb plugin, kept on loopback
(app/tests/dicomweb.rs runs this and checks what it reports):

1. inside a private network namespace (only `lo`), make a private certificate authority and a
   server certificate for 127.0.0.1 with openssl; start Orthanc with the DICOMweb plugin and basic
   authentication on 127.0.0.1:8045 (plain HTTP, its DIMSE port unused), and nginx in front of it
   as a hospital would: HTTPS on 127.0.0.1:8443 passing the basic credentials through, and HTTPS
   on 127.0.0.1:8446 admitting one bearer token (Debian's Orthanc 1.10 crashes when it serves
   HTTPS itself, and it has no bearer tokens);
2. run `focal pacs` as a user would: add-web nodes (the password read from standard input), echo,
   store the sample study with STOW-RS, find it with QIDO-RS (patient, date, modality, series),
   retrieve it with WADO-RS and compare what arrived with the sample, a retrieve through a link
   that drops mid-transfer and the same retrieve again (resume), analyse, export and STOW the SEG,
   Parametric Map and Encapsulated PDF, then find them; a wrong password, a server certificate
   from an authority Focal was not given, and a closed port each fail;
3. keep every step's output (the password and the Authorization header must be in none of
   them, with RUST_LOG=trace), stop Orthanc and print a JSON report on the last line.

With a fourth argument, the dicomweb test binary, the scenario also runs its ignored window test
(the PACS window's Find and Retrieve against the same server) inside the namespace.

usage: dicomweb_scenario.py FOCAL SAMPLE_DIR OUT_DIR [TEST_BINARY]   (re-runs itself under `unshare -rn`)
"""
import base64
import glob
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import pacs_scenario as ps  # noqa: E402
from pacs_scenario import loopback  # noqa: E402

HTTP_PORT, HTTPS_PORT, BEARER_PORT, DIMSE_PORT, CLOSED_PORT, DROP_PORT = 8045, 8443, 8446, 4245, 8499, 8444
USER, PASSWORD, TOKEN = "focal", "Pw-7f3b9c2e-not-in-logs", "Tok-41d8e0a6-not-in-logs"
SECRETS = (PASSWORD, TOKEN, base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode())
PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"


def make_certificates(d):
    """A private CA and a server certificate for 127.0.0.1 signed by it (PEM files in `d`)."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    ca_key, ca, key, csr, cert = (os.path.join(d, n) for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2",
        "-subj", "/CN=Focal test CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    ext = os.path.join(d, "server.ext")
    with open(ext, "w") as fh:
        fh.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                 "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert, "-days", "2",
        "-extfile", ext)
    both = os.path.join(d, "orthanc-tls.pem")  # Orthanc wants the key and the certificate in one file
    with open(both, "w") as fh:
        fh.write(open(key).read() + open(cert).read())
    return ca, cert, key


def start_nginx(work, cert, key):
    """nginx as the TLS front: one process, no privileges, everything under `work`."""
    d = os.path.join(work, "nginx")
    os.makedirs(d, exist_ok=True)
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    common = f"""
        ssl_certificate {cert};
        ssl_certificate_key {key};
        client_max_body_size 0;
        proxy_request_buffering off;
        proxy_http_version 1.1;
        proxy_set_header Host 127.0.0.1:{HTTP_PORT};"""
    conf = f"""
daemon off;
user root root;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{HTTPS_PORT} ssl;{common}
        location / {{ proxy_pass http://127.0.0.1:{HTTP_PORT}; }}
    }}
    server {{
        listen 127.0.0.1:{BEARER_PORT} ssl;{common}
        location / {{
            if ($http_authorization != "Bearer {TOKEN}") {{ return 401; }}
            proxy_set_header Authorization "Basic {basic}";
            proxy_pass http://127.0.0.1:{HTTP_PORT};
        }}
    }}
}}
"""
    path = os.path.join(d, "nginx.conf")
    with open(path, "w") as fh:
        fh.write(conf)
    log = open(os.path.join(d, "stderr.log"), "w")
    proc = subprocess.Popen(["nginx", "-p", d, "-e", os.path.join(d, "error.log"), "-c", path], stdout=log,
                            stderr=subprocess.STDOUT)
    return proc


def main():
    focal, sample, out = (os.path.abspath(a) for a in sys.argv[1:4])
    window_test = os.path.abspath(sys.argv[4]) if len(sys.argv) > 4 else None
    if loopback.interfaces() != ["lo"]:
        sys.exit(loopback.in_private_network([os.path.abspath(__file__)] + sys.argv[1:]))
    loopback.loopback_up()
    os.makedirs(out, exist_ok=True)
    env = dict(os.environ, FOCAL_CONFIG_DIR=os.path.join(out, "config"), RUST_LOG="trace")
    report = {"steps": {}}

    def focal_run(*args, key=None, stdin=None, extra_env=None):
        started = time.time()
        p = subprocess.run([focal, *args], input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=dict(env, **(extra_env or {})))
        step = {"code": p.returncode, "seconds": round(time.time() - started, 3), "stdout": p.stdout[-6000:],
                "stderr": p.stderr[-4000:]}
        report.setdefault("secret_seen_in", [])
        if any(s in p.stdout + p.stderr for s in SECRETS):
            report["secret_seen_in"].append(key or " ".join(args[:2]))
        if key:
            report["steps"][key] = step
        return step

    ca, cert, key = make_certificates(out)
    context = ssl.create_default_context(cafile=ca)
    auth_header = "Basic " + SECRETS[2]

    def rest(path, port=HTTPS_PORT):
        scheme = "https" if port != HTTP_PORT else "http"
        req = urllib.request.Request(f"{scheme}://127.0.0.1:{port}{path}", headers={"Authorization": auth_header})
        with urllib.request.urlopen(req, timeout=30, context=context if scheme == "https" else None) as r:
            return json.loads(r.read() or b"null")

    orthanc = ps.start_orthanc(out, {
        "DicomPort": DIMSE_PORT,
        "HttpPort": HTTP_PORT,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {USER: PASSWORD},
        "Plugins": [PLUGIN],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }, ready=lambda: rest("/system", HTTP_PORT), name="orthanc-web")
    nginx = None
    try:
        nginx = start_nginx(out, cert, key)
        deadline = time.time() + 30
        while True:
            try:
                rest("/system")
                break
            except OSError:
                if nginx.poll() is not None or time.time() > deadline:
                    raise SystemExit("nginx did not start: " + open(os.path.join(out, "nginx", "error.log")).read()[-2000:])
                time.sleep(0.2)
        report["plugins"] = rest("/plugins")
        url = f"https://127.0.0.1:{HTTPS_PORT}/dicom-web"
        focal_run("pacs", "add-web", "web", "--url", url, "--user", USER, "--password-stdin", "--ca-file", ca,
                  "--timeout", "10", stdin=PASSWORD + "\n", key="add")
        focal_run("pacs", "add-web", "web-untrusted", "--url", url, "--user", USER, "--password-stdin",
                  "--timeout", "10", stdin=PASSWORD + "\n")
        focal_run("pacs", "add-web", "web-wrong-password", "--url", url, "--user", USER, "--password-stdin",
                  "--ca-file", ca, "--timeout", "10", stdin="not-the-password\n")
        focal_run("pacs", "add-web", "web-closed", "--url", f"https://127.0.0.1:{CLOSED_PORT}/dicom-web", "--ca-file",
                  ca, "--timeout", "10")
        focal_run("pacs", "add-web", "web-dropping", "--url", f"https://127.0.0.1:{DROP_PORT}/dicom-web", "--user",
                  USER, "--password-stdin", "--ca-file", ca, "--timeout", "10", stdin=PASSWORD + "\n")
        focal_run("pacs", "add-web", "web-bearer", "--url", f"https://127.0.0.1:{BEARER_PORT}/dicom-web",
                  "--token-stdin", "--ca-file", ca, "--timeout", "10", stdin=TOKEN + "\n", key="add_bearer")
        focal_run("pacs", "add-web", "web-bearer-wrong", "--url", f"https://127.0.0.1:{BEARER_PORT}/dicom-web",
                  "--token-stdin", "--ca-file", ca, "--timeout", "10", stdin="Tok-wrong\n")
        focal_run("pacs", "add-web", "web-plain", "--url", "http://pacs.example.org/dicom-web", "--user", USER,
                  "--password-stdin", stdin=PASSWORD + "\n", key="add_plain_http")
        cfg = os.path.join(out, "config", "pacs.json")
        report["config_mode"] = oct(os.stat(cfg).st_mode & 0o777)
        report["config_holds_password"] = PASSWORD in open(cfg).read()
        focal_run("pacs", "nodes", key="nodes")

        focal_run("pacs", "echo", "web", key="echo")
        focal_run("pacs", "echo", "web-untrusted", key="echo_untrusted")
        focal_run("pacs", "echo", "web-wrong-password", key="echo_wrong_password")
        focal_run("pacs", "echo", "web-closed", key="echo_closed")
        focal_run("pacs", "echo", "web-bearer", key="echo_bearer")
        focal_run("pacs", "echo", "web-bearer-wrong", key="echo_bearer_wrong")

        # STOW-RS of the sample study (the only way it reaches this server).
        files = sorted(glob.glob(os.path.join(sample, "*")))
        focal_run("pacs", "store", "web", *files, key="store_sample")
        report["orthanc_instances_after_stow"] = len(rest("/instances"))
        studies = rest("/studies")
        study_uid = rest(f"/studies/{studies[0]}")["MainDicomTags"]["StudyInstanceUID"] if studies else ""
        report["study_uid"] = study_uid

        focal_run("pacs", "find", "web", "--json", key="find_all")
        focal_run("pacs", "find", "web", "--patient-name", "*", "--modality", "MR", "--date", "19000101-", "--json",
                  key="find_mr_dated")
        focal_run("pacs", "find", "web", "--modality", "CT", "--json", key="find_ct")
        focal_run("pacs", "find", "web", "--date=-19000101", "--json", key="find_old")
        focal_run("pacs", "find", "web", "--study", study_uid, "--json", key="find_series")
        focal_run("pacs", "find", "web", key="find_table")
        focal_run("pacs", "find", "web-bearer", "--json", key="find_bearer")

        if window_test:
            p = subprocess.run([window_test, "--ignored", "--exact", "window_queries_and_retrieves_inside_the_scenario",
                                "--nocapture", "--test-threads=1"], cwd=os.path.dirname(os.path.dirname(HERE)),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=dict(env, RUST_LOG="focal=info", FOCAL_PACS_WINDOW_CONFIG=cfg,
                                        FOCAL_PACS_WINDOW_CACHE=os.path.join(out, "window-cache"),
                                        FOCAL_PACS_WINDOW_STUDY=study_uid))
            report["window"] = {"code": p.returncode, "stdout": p.stdout[-4000:], "stderr": p.stderr[-4000:]}
            if any(s in p.stdout + p.stderr for s in SECRETS):
                report["secret_seen_in"].append("window")

        cache = os.path.join(out, "cache")
        focal_run("pacs", "get", "web", "--study", study_uid, "--out", cache, "--json", key="get")
        folder = json.loads(report["steps"]["get"]["stdout"] or "{}").get("folder", "")
        focal_run("info", folder, "--json", key="info")
        # What arrived is what was sent: the same instances, the same pixels.
        import numpy as np
        import pydicom
        sent = {}
        for f in files:
            ds = pydicom.dcmread(f)
            sent[ds.SOPInstanceUID] = ds
        same, differ = 0, []
        for f in glob.glob(os.path.join(folder, "*.dcm")):
            ds = pydicom.dcmread(f)
            src = sent.get(ds.SOPInstanceUID)
            if src is not None and np.array_equal(src.pixel_array, ds.pixel_array) and src.PatientName == ds.PatientName:
                same += 1
            else:
                differ.append(os.path.basename(f))
        report["retrieved_identical"], report["retrieved_different"] = same, differ[:5]

        # A link that drops mid-transfer (TLS relayed as bytes), then the same retrieve again.
        link = ps.DroppingLink(port=DROP_PORT, upstream=HTTPS_PORT, after=2_000_000)
        resumed = os.path.join(out, "cache-resume")
        ps.retrieve_through_drop(focal_run, report, "web-dropping", study_uid, resumed, link)
        focal_run("pacs", "get", "web", "--study", study_uid, "--out", resumed, "--json", key="get_resumed")

        # Analyse what arrived, export (identified, to join its study) and STOW the results.
        ps.analyse_export_store(focal_run, out, folder, "web", study_uid, key="store_results")
        report["orthanc_studies_after_store"] = len(rest("/studies"))
    finally:
        if nginx is not None:
            ps.stop(nginx)
        ps.stop(orthanc)
    report["after_stop"] = loopback.listening_addresses()
    report["interfaces"] = loopback.interfaces()
    shutil.rmtree(os.path.join(out, "orthanc-web-db"), ignore_errors=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()

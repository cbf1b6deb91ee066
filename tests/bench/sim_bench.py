#!/usr/bin/env python3
"""Benchmark for the `vcenter-sim` binary.

Phases (each can be skipped):

* mixed  -- N client processes (own pyvmomi session each) for --duration seconds:
            a "simple" sub-phase where every client only does RetrievePropertiesEx of
            name + runtime.powerState on one VM (calls/s, client latency p50/p99), a
            "simple_raw" sub-phase doing the same call as hand-built SOAP over http.client
            (excludes pyvmomi's Python (de)serialization, i.e. closer to server capacity),
            and a "mixed" sub-phase: RetrieveProperties/RetrievePropertiesEx of a few VMs
            plus, every --lifecycle-every iterations, CreateVM_Task -> PowerOnVM_Task ->
            PowerOffVM_Task -> Destroy_Task, each awaited with pyVim.task.WaitForTask.
            SOAP calls are counted by patching SoapStubAdapter.InvokeMethod (property
            reads through the Fetch accessor are counted too).
* scale  -- start with --vms N on a fresh data dir (spawn -> info file time, ready_ms,
            RSS), paged RetrievePropertiesEx over a ContainerView of all VMs with pyvmomi
            and with raw SOAP (per-round-trip timing), RSS after, then SIGTERM + restart on
            the same data dir (start-up from the persisted store) and the raw retrieval again.

Prints exactly one JSON object on stdout; progress goes to stderr.

Usage: python3 tests/bench/sim_bench.py [--duration 10] [--clients 8] [--vms 100000]
       [--max-objects 1000] [--skip-scale] [--skip-mixed] [--bin PATH]
"""

import argparse
import atexit
import ctypes
import datetime
import http.client
import json
import multiprocessing
import os
import platform
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SOAP_NS = ('xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
           'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"')
TOKEN_RE = re.compile(rb"<token>([^<]+)</token>")
OBJECTS_RE = re.compile(rb"<objects[ >]")
FAULT_RE = re.compile(rb"<faultstring>(.*?)</faultstring>", re.S)


def log(msg):
    sys.stderr.write("[sim_bench %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


# --------------------------------------------------------------------------------------
# Simulator process handling and cleanup
# --------------------------------------------------------------------------------------

_SIMS = []      # live SimProcess objects
_TMPDIRS = []   # temp dirs to delete
_WORKERS = []   # live multiprocessing.Process objects
_MAIN_PID = os.getpid()


def _set_pdeathsig():
    """Runs in the child before exec: SIGKILL the simulator if the benchmark dies."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def cleanup():
    if os.getpid() != _MAIN_PID:
        return
    for w in list(_WORKERS):
        try:
            if w.is_alive():
                w.kill()
                w.join(5)
        except Exception:
            pass
    _WORKERS.clear()
    for s in list(_SIMS):
        try:
            s.stop(kill=True)
        except Exception:
            pass
    _SIMS.clear()
    for d in list(_TMPDIRS):
        shutil.rmtree(d, ignore_errors=True)
    _TMPDIRS.clear()


def _on_signal(signum, _frame):
    raise SystemExit(128 + signum)


def make_tmpdir(tag):
    d = Path(tempfile.mkdtemp(prefix="vcsim-bench-%s-" % tag))
    _TMPDIRS.append(d)
    return d


def read_status(pid):
    """VmRSS / VmHWM of a process, in KiB."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    k, v = line.split(":", 1)
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def cpu_seconds(pid):
    """utime + stime of a process in seconds."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
        fields = data[data.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class SimProcess:
    def __init__(self, binary, data_dir, extra_args=()):
        self.binary = str(binary)
        self.data_dir = Path(data_dir)
        self.extra_args = list(extra_args)
        self.proc = None
        self.info = None
        self.port = 0
        self.log_path = self.data_dir.parent / (self.data_dir.name + ".log")
        self.startup_wall_s = None

    def start(self, timeout=900.0):
        info_file = self.data_dir.parent / (self.data_dir.name + ".info.json")
        if info_file.exists():
            info_file.unlink()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "warn")
        logf = open(self.log_path, "ab")
        cmd = [self.binary, "--listen", "127.0.0.1:%d" % self.port,
               "--data-dir", str(self.data_dir), "--info-file", str(info_file),
               *self.extra_args]
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdout=logf, stderr=logf, env=env,
                                     stdin=subprocess.DEVNULL, preexec_fn=_set_pdeathsig)
        logf.close()
        _SIMS.append(self)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if info_file.exists() and info_file.stat().st_size > 0:
                t1 = time.perf_counter()
                try:
                    self.info = json.loads(info_file.read_text())
                except ValueError:
                    time.sleep(0.005)  # partially written
                    continue
                self.startup_wall_s = t1 - t0
                self.port = int(self.info["url"].split(":")[2].split("/")[0])
                return self
            if self.proc.poll() is not None:
                raise RuntimeError("vcenter-sim exited with %s; log tail:\n%s"
                                   % (self.proc.returncode, self.log_tail(everything=True)))
            time.sleep(0.005)
        raise RuntimeError("vcenter-sim did not write its info file within %ss" % timeout)

    def log_tail(self, n=4000, everything=False):
        """Warning/error lines of the simulator log (its start-up banner is left out)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        if everything:
            return text[-n:]
        keep = [ln for ln in text.splitlines()
                if re.search(r"\b(WARN|ERROR)\b|panick|exited|fatal", ln)]
        return "\n".join(keep)[-n:]

    @property
    def pid(self):
        return self.proc.pid

    def stop(self, kill=False, timeout=120):
        """Stops the process; returns the seconds it took to exit."""
        took = None
        if self.proc and self.proc.poll() is None:
            t0 = time.perf_counter()
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                took = None
            else:
                took = time.perf_counter() - t0
        self.proc = None
        if self in _SIMS:
            _SIMS.remove(self)
        return took

    def connect(self):
        from pyVim.connect import SmartConnect
        return SmartConnect(host="127.0.0.1", port=self.port, user=self.info["username"],
                            pwd=self.info["password"], disableSslCertValidation=True)


# --------------------------------------------------------------------------------------
# Raw SOAP helpers
# --------------------------------------------------------------------------------------

class RawSoap:
    """Keep-alive HTTPS connection posting hand-built SOAP bodies with a session cookie."""

    def __init__(self, port, cookie, soap_action):
        self.port = port
        self.cookie = cookie
        self.soap_action = soap_action
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.ctx = ctx
        self.conn = None

    def _connect(self):
        self.conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx,
                                                timeout=600)

    def post(self, body):
        """Returns (status, response bytes, seconds for the round trip)."""
        if self.conn is None:
            self._connect()
        headers = {"Cookie": self.cookie, "SOAPAction": self.soap_action,
                   "Content-Type": "text/xml; charset=UTF-8"}
        data = body.encode()
        t0 = time.perf_counter()
        self.conn.request("POST", "/sdk", data, headers)
        resp = self.conn.getresponse()
        payload = resp.read()
        dt = time.perf_counter() - t0
        return resp.status, payload, dt

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def envelope(inner):
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            '<soapenv:Envelope %s><soapenv:Body>%s</soapenv:Body></soapenv:Envelope>'
            % (SOAP_NS, inner))


def body_retrieve_ex_view(view_id, max_objects):
    return envelope(
        '<RetrievePropertiesEx xmlns="urn:vim25">'
        '<_this type="PropertyCollector">propertyCollector</_this>'
        '<specSet><propSet><type>VirtualMachine</type><pathSet>name</pathSet>'
        '<pathSet>runtime.powerState</pathSet></propSet>'
        '<objectSet><obj type="ContainerView">%s</obj><skip>true</skip>'
        '<selectSet xsi:type="TraversalSpec"><name>v</name><type>ContainerView</type>'
        '<path>view</path><skip>false</skip></selectSet></objectSet></specSet>'
        '<options><maxObjects>%d</maxObjects></options></RetrievePropertiesEx>'
        % (view_id, max_objects))


def body_continue(token):
    return envelope(
        '<ContinueRetrievePropertiesEx xmlns="urn:vim25">'
        '<_this type="PropertyCollector">propertyCollector</_this>'
        '<token>%s</token></ContinueRetrievePropertiesEx>' % token)


def body_retrieve_ex_vm(vm_id):
    return envelope(
        '<RetrievePropertiesEx xmlns="urn:vim25">'
        '<_this type="PropertyCollector">propertyCollector</_this>'
        '<specSet><propSet><type>VirtualMachine</type><pathSet>name</pathSet>'
        '<pathSet>runtime.powerState</pathSet></propSet>'
        '<objectSet><obj type="VirtualMachine">%s</obj></objectSet></specSet>'
        '<options></options></RetrievePropertiesEx>' % vm_id)


def fault_text(payload):
    m = FAULT_RE.search(payload)
    return (m.group(1) if m else payload[:800]).decode(errors="replace")


# --------------------------------------------------------------------------------------
# Stats helpers
# --------------------------------------------------------------------------------------

def percentile(sorted_vals, p):
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def lat_summary(lats):
    lats = sorted(lats)
    if not lats:
        return {}
    ms = lambda v: round(v * 1000.0, 3)
    return {"n": len(lats), "p50_ms": ms(percentile(lats, 50)),
            "p90_ms": ms(percentile(lats, 90)), "p99_ms": ms(percentile(lats, 99)),
            "max_ms": ms(lats[-1]), "mean_ms": ms(sum(lats) / len(lats))}


# --------------------------------------------------------------------------------------
# Client workers (separate processes)
# --------------------------------------------------------------------------------------

class CallCounter:
    """Patches SoapStubAdapter.InvokeMethod: counts calls, time and faults per method."""

    def __init__(self):
        from pyVmomi import SoapAdapter
        self.by_method = {}
        self.enabled = False
        orig = SoapAdapter.SoapStubAdapter.InvokeMethod
        counter = self

        def counted(stub, mo, info, args, outerStub=None):
            if not counter.enabled:
                return orig(stub, mo, info, args, outerStub)
            name = getattr(info, "wsdlName", None) or getattr(info, "name", "?")
            if name == "Fetch" and args:
                name = "Fetch(%s)" % args[0]
            rec = counter.by_method.get(name)
            if rec is None:
                rec = counter.by_method[name] = [0, 0.0, 0.0, 0]  # n, total s, max s, faults
            t0 = time.perf_counter()
            try:
                return orig(stub, mo, info, args, outerStub)
            except BaseException:
                rec[3] += 1
                raise
            finally:
                dt = time.perf_counter() - t0
                rec[0] += 1
                rec[1] += dt
                if dt > rec[2]:
                    rec[2] = dt

        SoapAdapter.SoapStubAdapter.InvokeMethod = counted

    def reset(self):
        self.by_method = {}

    def total(self):
        return sum(r[0] for r in self.by_method.values())


def _worker_setup(port, user, pwd):
    from pyVim.connect import SmartConnect
    from pyVmomi import vim
    counter = CallCounter()
    si = SmartConnect(host="127.0.0.1", port=port, user=user, pwd=pwd,
                      disableSslCertValidation=True)
    content = si.RetrieveContent()
    pc = content.propertyCollector
    view = content.viewManager.CreateContainerView(content.rootFolder,
                                                   [vim.VirtualMachine], True)
    vms = sorted(view.view, key=lambda v: v._moId)
    view.Destroy()
    dc = content.rootFolder.childEntity[0]
    cluster = [c for c in dc.hostFolder.childEntity
               if isinstance(c, vim.ClusterComputeResource)][0]
    ds_name = dc.datastore[0].name
    return si, content, pc, vms, dc, cluster, ds_name, counter


def _prop_spec_vms(vim, vms):
    return vim.PropertyCollector.FilterSpec(
        objectSet=[vim.PropertyCollector.ObjectSpec(obj=v, skip=False) for v in vms],
        propSet=[vim.PropertyCollector.PropertySpec(
            type=vim.VirtualMachine, pathSet=["name", "runtime.powerState"])])


def _record_error(errors, where, exc):
    key = "%s: %s" % (where, type(exc).__name__)
    e = errors.setdefault(key, {"count": 0, "examples": []})
    e["count"] += 1
    if len(e["examples"]) < 3:
        msg = getattr(exc, "msg", None) or str(exc)
        e["examples"].append(msg[:600] if msg else repr(exc)[:600])


def worker_main(idx, mode, port, user, pwd, opts, ready_q, start_evt, result_q):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    result = {"client": idx, "mode": mode, "calls": 0, "errors": {}, "by_method": {}}
    try:
        from pyVim.task import WaitForTask
        from pyVmomi import vim
        si, content, pc, vms, dc, cluster, ds_name, counter = _worker_setup(port, user, pwd)
        if not vms:
            raise RuntimeError("no VirtualMachine in the inventory")
        ro = vim.PropertyCollector.RetrieveOptions()
        my_vm = vms[idx % len(vms)]
        one_spec = [_prop_spec_vms(vim, [my_vm])]
        raw = None
        if mode == "simple_raw":
            raw = RawSoap(port, si._stub.cookie, si._stub.versionId)
            raw_body = body_retrieve_ex_vm(my_vm._moId)
            st, payload, _ = raw.post(raw_body)  # warm the connection
            if st != 200:
                raise RuntimeError("raw RetrievePropertiesEx HTTP %s: %s"
                                   % (st, fault_text(payload)))
        # a few VMs per mixed read
        few = [vms[(idx * 3 + k) % len(vms)] for k in range(min(3, len(vms)))]
        few_spec = [_prop_spec_vms(vim, few)]
        vm_folder = dc.vmFolder
        pool = cluster.resourcePool
        lifecycle_every = max(1, opts["lifecycle_every"])
        # warm up (not counted)
        pc.RetrievePropertiesEx(specSet=one_spec, options=ro)

        ready_q.put(idx)
        start_evt.wait()
        deadline = time.time() + opts["duration"]
        counter.enabled = True
        lats = []
        calls = 0
        lifecycles = 0
        lifecycle_s = []
        it = 0
        perf = time.perf_counter
        if mode == "simple":
            while time.time() < deadline:
                t0 = perf()
                try:
                    r = pc.RetrievePropertiesEx(specSet=one_spec, options=ro)
                    if not r or len(r.objects) != 1:
                        raise RuntimeError("expected 1 object, got %r" % (r,))
                except Exception as exc:
                    _record_error(result["errors"], "RetrievePropertiesEx", exc)
                lats.append(perf() - t0)
            calls = counter.total()
        elif mode == "simple_raw":
            while time.time() < deadline:
                try:
                    st, payload, dt = raw.post(raw_body)
                    lats.append(dt)
                    calls += 1
                    if st != 200 or not OBJECTS_RE.search(payload):
                        raise RuntimeError("HTTP %s: %s" % (st, fault_text(payload)))
                except Exception as exc:
                    _record_error(result["errors"], "raw RetrievePropertiesEx", exc)
                    raw.close()
        else:  # mixed
            while time.time() < deadline:
                it += 1
                t0 = perf()
                try:
                    if it % 2:
                        r = pc.RetrievePropertiesEx(specSet=few_spec, options=ro)
                        n = len(r.objects) if r else 0
                    else:
                        r = pc.RetrieveProperties(specSet=few_spec)
                        n = len(r)
                    if n != len(few):
                        raise RuntimeError("expected %d objects, got %d" % (len(few), n))
                except Exception as exc:
                    _record_error(result["errors"], "read", exc)
                lats.append(perf() - t0)
                if it % lifecycle_every == 0:
                    # A started lifecycle is finished even past the deadline so that the
                    # inventory ends clean.
                    name = "bench-c%d-%d" % (idx, it)
                    spec = vim.vm.ConfigSpec(
                        name=name, memoryMB=64, numCPUs=1, guestId="otherGuest64",
                        files=vim.vm.FileInfo(vmPathName="[%s]" % ds_name))
                    l0 = perf()
                    vm = None
                    stage = "CreateVM_Task"
                    try:
                        task = vm_folder.CreateVM_Task(config=spec, pool=pool)
                        WaitForTask(task, pc=pc)
                        vm = task.info.result
                        stage = "PowerOnVM_Task"
                        WaitForTask(vm.PowerOnVM_Task(), pc=pc)
                        stage = "PowerOffVM_Task"
                        WaitForTask(vm.PowerOffVM_Task(), pc=pc)
                        stage = "Destroy_Task"
                        WaitForTask(vm.Destroy_Task(), pc=pc)
                        vm = None
                        lifecycles += 1
                        lifecycle_s.append(perf() - l0)
                    except Exception as exc:
                        _record_error(result["errors"], stage, exc)
                        if vm is not None:  # best effort, and recorded
                            try:
                                try:
                                    WaitForTask(vm.PowerOffVM_Task(), pc=pc)
                                except Exception:
                                    pass
                                WaitForTask(vm.Destroy_Task(), pc=pc)
                            except Exception as exc2:
                                _record_error(result["errors"], "cleanup Destroy_Task", exc2)
            calls = counter.total()
        t_end = time.time()
        counter.enabled = False
        result.update({
            "calls": calls, "lats": lats, "lifecycles": lifecycles,
            "lifecycle_s": lifecycle_s, "iterations": it,
            "by_method": {k: list(v) for k, v in counter.by_method.items()},
            "t_end": t_end,
        })
        if raw is not None:
            raw.close()
        try:
            from pyVim.connect import Disconnect
            Disconnect(si)
        except Exception:
            pass
    except BaseException as exc:
        result["fatal"] = "%s: %s\n%s" % (type(exc).__name__, exc, traceback.format_exc()[-3000:])
        try:
            ready_q.put(idx)
        except Exception:
            pass
    result_q.put(result)


def run_clients(sim, mode, n_clients, duration, opts):
    mp = multiprocessing.get_context("fork")
    ready_q = mp.Queue()
    result_q = mp.Queue()
    start_evt = mp.Event()
    wopts = dict(opts, duration=duration)
    procs = []
    for i in range(n_clients):
        p = mp.Process(target=worker_main, daemon=True,
                       args=(i, mode, sim.port, sim.info["username"], sim.info["password"],
                             wopts, ready_q, start_evt, result_q))
        p.start()
        procs.append(p)
        _WORKERS.append(p)
    for _ in range(n_clients):
        ready_q.get(timeout=300)
    cpu0 = cpu_seconds(sim.pid)
    t0 = time.time()
    start_evt.set()
    results = []
    for _ in range(n_clients):
        results.append(result_q.get(timeout=duration + 600))
    t_end = time.time()
    cpu1 = cpu_seconds(sim.pid)
    for p in procs:
        p.join(30)
        if p in _WORKERS:
            _WORKERS.remove(p)
    fatal = [r["fatal"] for r in results if "fatal" in r]
    if fatal:
        raise RuntimeError("%s phase: %d client(s) failed; first:\n%s"
                           % (mode, len(fatal), fatal[0]))
    elapsed = max(r["t_end"] for r in results) - t0
    return results, elapsed, (cpu1 - cpu0) if cpu0 is not None and cpu1 is not None else None, t_end - t0


def merge_methods(results):
    merged = {}
    for r in results:
        for k, (n, tot, mx, faults) in r["by_method"].items():
            m = merged.setdefault(k, [0, 0.0, 0.0, 0])
            m[0] += n
            m[1] += tot
            m[2] = max(m[2], mx)
            m[3] += faults
    return {k: {"calls": v[0], "mean_ms": round(v[1] / v[0] * 1000, 3) if v[0] else None,
                "max_ms": round(v[2] * 1000, 3), "faults": v[3]}
            for k, v in sorted(merged.items(), key=lambda kv: -kv[1][0])}


def merge_errors(results):
    merged = {}
    for r in results:
        for k, e in r["errors"].items():
            m = merged.setdefault(k, {"count": 0, "examples": []})
            m["count"] += e["count"]
            for ex in e["examples"]:
                if len(m["examples"]) < 3 and ex not in m["examples"]:
                    m["examples"].append(ex)
    return merged


def count_vms(si):
    from pyVmomi import vim
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
    names = [v.name for v in view.view]
    view.Destroy()
    return names


def phase_mixed(args, binary, out):
    d = make_tmpdir("mixed")
    sim = SimProcess(binary, d / "data", ["--vms", str(args.mixed_vms)])
    sim.start()
    log("mixed-phase simulator up on port %d (pid %d, %d VMs), start-up %.3fs"
        % (sim.port, sim.pid, args.mixed_vms, sim.startup_wall_s))
    res = {"simulator_vms": args.mixed_vms, "clients": args.clients,
           "duration_s": args.duration, "lifecycle_every": args.lifecycle_every}

    # --- simple (pyvmomi) ---
    log("simple phase: %d clients x %ss of RetrievePropertiesEx(name, runtime.powerState) on one VM"
        % (args.clients, args.duration))
    results, elapsed, cpu, _ = run_clients(sim, "simple", args.clients, args.duration,
                                           {"lifecycle_every": args.lifecycle_every})
    calls = sum(r["calls"] for r in results)
    lats = [x for r in results for x in r["lats"]]
    res["simple"] = {
        "calls": calls, "elapsed_s": round(elapsed, 3),
        "calls_per_s": round(calls / elapsed, 1),
        "latency": lat_summary(lats),
        "per_client_calls_per_s": [round(r["calls"] / elapsed, 1) for r in results],
        "server_cpu_s": round(cpu, 3) if cpu is not None else None,
        "server_cpu_us_per_call": round(cpu / calls * 1e6, 1) if cpu and calls else None,
        "by_method": merge_methods(results), "errors": merge_errors(results),
    }
    log("simple: %.1f calls/s, p50 %.3f ms, p99 %.3f ms, server cpu %.1f us/call"
        % (res["simple"]["calls_per_s"], res["simple"]["latency"].get("p50_ms") or -1,
           res["simple"]["latency"].get("p99_ms") or -1,
           res["simple"]["server_cpu_us_per_call"] or -1))

    # --- simple (raw SOAP, no pyvmomi (de)serialization in the loop) ---
    if not args.skip_raw_simple:
        log("simple_raw phase: same call as hand-built SOAP via http.client")
        results, elapsed, cpu, _ = run_clients(sim, "simple_raw", args.clients, args.duration,
                                               {"lifecycle_every": args.lifecycle_every})
        calls = sum(r["calls"] for r in results)
        lats = [x for r in results for x in r["lats"]]
        res["simple_raw"] = {
            "calls": calls, "elapsed_s": round(elapsed, 3),
            "calls_per_s": round(calls / elapsed, 1),
            "latency": lat_summary(lats),
            "server_cpu_s": round(cpu, 3) if cpu is not None else None,
            "server_cpu_us_per_call": round(cpu / calls * 1e6, 1) if cpu and calls else None,
            "errors": merge_errors(results),
        }
        log("simple_raw: %.1f calls/s, p50 %.3f ms, p99 %.3f ms, server cpu %.1f us/call"
            % (res["simple_raw"]["calls_per_s"], res["simple_raw"]["latency"].get("p50_ms") or -1,
               res["simple_raw"]["latency"].get("p99_ms") or -1,
               res["simple_raw"]["server_cpu_us_per_call"] or -1))

    # --- mixed ---
    log("mixed phase: %d clients x %ss, lifecycle every %d iterations"
        % (args.clients, args.duration, args.lifecycle_every))
    results, elapsed, cpu, _ = run_clients(sim, "mixed", args.clients, args.duration,
                                           {"lifecycle_every": args.lifecycle_every})
    calls = sum(r["calls"] for r in results)
    lifecycles = sum(r["lifecycles"] for r in results)
    lats = [x for r in results for x in r["lats"]]
    lc = [x for r in results for x in r["lifecycle_s"]]
    res["mixed"] = {
        "calls": calls, "elapsed_s": round(elapsed, 3),
        "calls_per_s": round(calls / elapsed, 1),
        "lifecycles": lifecycles,
        "lifecycles_per_s": round(lifecycles / elapsed, 2),
        "iterations": sum(r["iterations"] for r in results),
        "read_latency": lat_summary(lats),
        "lifecycle_latency": lat_summary(lc),
        "server_cpu_s": round(cpu, 3) if cpu is not None else None,
        "server_cpu_us_per_call": round(cpu / calls * 1e6, 1) if cpu and calls else None,
        "by_method": merge_methods(results), "errors": merge_errors(results),
    }
    log("mixed: %.1f calls/s, %.2f lifecycles/s, errors: %s"
        % (res["mixed"]["calls_per_s"], res["mixed"]["lifecycles_per_s"],
           {k: v["count"] for k, v in res["mixed"]["errors"].items()} or "none"))

    # inventory must be back to the pre-populated VMs
    from pyVim.connect import Disconnect
    si = sim.connect()
    try:
        names = count_vms(si)
        left = sorted(n for n in names if n.startswith("bench-"))
        res["mixed"]["vms_after"] = len(names)
        res["mixed"]["leftover_bench_vms"] = left[:20]
        if len(names) != args.mixed_vms or left:
            log("WARNING: %d VMs after the mixed phase (expected %d), leftovers %s"
                % (len(names), args.mixed_vms, left[:5]))
    finally:
        Disconnect(si)
    res["server_rss_kib_after"] = read_status(sim.pid)
    sim.stop()
    res["simulator_log_warnings"] = sim.log_tail(3000)
    out["mixed"] = res


# --------------------------------------------------------------------------------------
# Scale phase
# --------------------------------------------------------------------------------------

def pyvmomi_paged(si, view, max_objects):
    from pyVmomi import vim
    pc = si.content.propertyCollector
    spec = vim.PropertyCollector.FilterSpec(
        objectSet=[vim.PropertyCollector.ObjectSpec(
            obj=view, skip=True,
            selectSet=[vim.PropertyCollector.TraversalSpec(
                name="v", type=vim.view.ContainerView, path="view", skip=False)])],
        propSet=[vim.PropertyCollector.PropertySpec(
            type=vim.VirtualMachine, pathSet=["name", "runtime.powerState"])])
    names = []
    states = {}
    pages = 0
    page_s = []
    t0 = time.perf_counter()
    p0 = time.perf_counter()
    r = pc.RetrievePropertiesEx(specSet=[spec],
                                options=vim.PropertyCollector.RetrieveOptions(maxObjects=max_objects))
    while True:
        page_s.append(time.perf_counter() - p0)
        if r is None:
            break
        pages += 1
        for oc in r.objects:
            nm = ps = None
            for dp in oc.propSet:
                if dp.name == "name":
                    nm = dp.val
                elif dp.name == "runtime.powerState":
                    ps = dp.val
            names.append(nm)
            states[ps] = states.get(ps, 0) + 1
        if not r.token:
            break
        p0 = time.perf_counter()
        r = pc.ContinueRetrievePropertiesEx(token=r.token)
    total = time.perf_counter() - t0
    return {"wall_s": round(total, 3), "pages": pages, "objects": len(names),
            "distinct_names": len(set(names)), "none_names": names.count(None),
            "power_states": {str(k): v for k, v in states.items()},
            "page_latency": lat_summary(page_s)}


def raw_paged(port, cookie, soap_action, view_id, max_objects):
    raw = RawSoap(port, cookie, soap_action)
    try:
        # Open the TLS connection first so the handshake is not timed.
        raw._connect()
        raw.conn.connect()
        rtts = []
        sizes = []
        bodies_objects = 0
        st, payload, dt = raw.post(body_retrieve_ex_view(view_id, max_objects))
        pages = 0
        sent = "RetrievePropertiesEx(view=%s, maxObjects=%d)" % (view_id, max_objects)
        while True:
            if st != 200:
                raise RuntimeError("raw %s -> HTTP %s: %s" % (sent, st, fault_text(payload)))
            pages += 1
            rtts.append(dt)
            sizes.append(len(payload))
            bodies_objects += len(OBJECTS_RE.findall(payload))
            m = TOKEN_RE.search(payload)
            if not m:
                break
            token = m.group(1).decode()
            sent = "ContinueRetrievePropertiesEx(token=%s)" % token
            st, payload, dt = raw.post(body_continue(token))
        total = sum(rtts)
        return {"server_time_s": round(total, 3), "pages": pages, "objects": bodies_objects,
                "bytes": sum(sizes), "first_page_ms": round(rtts[0] * 1000, 3),
                "page_latency": lat_summary(rtts)}
    finally:
        raw.close()


def phase_scale(args, binary, out):
    from pyVim.connect import Disconnect
    from pyVmomi import vim
    d = make_tmpdir("scale")
    data = d / "data"
    res = {"vms": args.vms, "max_objects": args.max_objects}
    sim = SimProcess(binary, data, ["--vms", str(args.vms)])
    log("scale: starting simulator with --vms %d on a fresh data dir" % args.vms)
    sim.start()
    res["fresh_start"] = {"spawn_to_info_file_s": round(sim.startup_wall_s, 3),
                          "ready_ms": sim.info.get("ready_ms"),
                          "rss_kib": read_status(sim.pid),
                          "cpu_s": cpu_seconds(sim.pid)}
    log("scale: up in %.3fs (ready_ms %s), RSS %s"
        % (sim.startup_wall_s, sim.info.get("ready_ms"), res["fresh_start"]["rss_kib"]))
    res["data_dir_bytes"] = sum(f.stat().st_size for f in data.rglob("*") if f.is_file())

    si = sim.connect()
    try:
        content = si.RetrieveContent()
        view = content.viewManager.CreateContainerView(content.rootFolder,
                                                       [vim.VirtualMachine], True)
        cookie, soap_action = si._stub.cookie, si._stub.versionId

        log("scale: raw-HTTP paged retrieval (maxObjects=%d)" % args.max_objects)
        cpu0 = cpu_seconds(sim.pid)
        res["raw_http"] = raw_paged(sim.port, cookie, soap_action, view._moId, args.max_objects)
        cpu1 = cpu_seconds(sim.pid)
        res["raw_http"]["server_cpu_s"] = round(cpu1 - cpu0, 3) if cpu0 is not None else None
        log("scale: raw: %(server_time_s)ss over %(pages)d pages, %(objects)d objects"
            % res["raw_http"])

        log("scale: pyvmomi paged retrieval (maxObjects=%d)" % args.max_objects)
        cpu0 = cpu_seconds(sim.pid)
        res["pyvmomi"] = pyvmomi_paged(si, view, args.max_objects)
        cpu1 = cpu_seconds(sim.pid)
        res["pyvmomi"]["server_cpu_s"] = round(cpu1 - cpu0, 3) if cpu0 is not None else None
        log("scale: pyvmomi: %(wall_s)ss over %(pages)d pages, %(objects)d objects, "
            "%(distinct_names)d distinct names" % res["pyvmomi"])
        res["rss_after_retrieval_kib"] = read_status(sim.pid)
        try:
            view.Destroy()
        except Exception as exc:
            res["view_destroy_error"] = str(exc)
    finally:
        try:
            Disconnect(si)
        except Exception:
            pass

    checks = {
        "pyvmomi_objects_ok": res["pyvmomi"]["objects"] == args.vms,
        "pyvmomi_distinct_names_ok": res["pyvmomi"]["distinct_names"] == args.vms,
        "raw_objects_ok": res["raw_http"]["objects"] == args.vms,
    }

    log("scale: SIGTERM and restart on the same data dir")
    res["shutdown_s"] = sim.stop()
    sim2 = SimProcess(binary, data, ["--vms", str(args.vms)])
    sim2.start()
    res["restart"] = {"spawn_to_info_file_s": round(sim2.startup_wall_s, 3),
                      "ready_ms": sim2.info.get("ready_ms"),
                      "rss_kib": read_status(sim2.pid),
                      "cpu_s": cpu_seconds(sim2.pid)}
    log("scale: restarted in %.3fs (ready_ms %s), RSS %s"
        % (sim2.startup_wall_s, sim2.info.get("ready_ms"), res["restart"]["rss_kib"]))
    si = sim2.connect()
    try:
        content = si.RetrieveContent()
        view = content.viewManager.CreateContainerView(content.rootFolder,
                                                       [vim.VirtualMachine], True)
        res["restart"]["raw_http"] = raw_paged(sim2.port, si._stub.cookie, si._stub.versionId,
                                               view._moId, args.max_objects)
        log("scale: after restart raw: %(server_time_s)ss over %(pages)d pages, "
            "%(objects)d objects" % res["restart"]["raw_http"])
        res["restart"]["rss_after_retrieval_kib"] = read_status(sim2.pid)
        view.Destroy()
    finally:
        try:
            Disconnect(si)
        except Exception:
            pass
    checks["restart_objects_ok"] = res["restart"]["raw_http"]["objects"] == args.vms
    res["restart"]["shutdown_s"] = sim2.stop()
    res["checks"] = checks
    res["simulator_log_warnings"] = sim2.log_tail(3000)
    out["scale"] = res
    if not all(checks.values()):
        raise AssertionError("scale checks failed: %s" % checks)


# --------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------

def machine_info(binary):
    info = {"nproc": os.cpu_count(),
            "affinity_cpus": len(os.sched_getaffinity(0)),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "kernel": platform.release(), "python": platform.python_version()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            info["mem_total_kib"] = int(f.readline().split()[1])
    except OSError:
        pass
    try:
        import pyVmomi
        info["pyvmomi"] = getattr(pyVmomi, "__version__", None) or \
            __import__("importlib.metadata").metadata.version("pyvmomi")
    except Exception:
        pass
    b = Path(binary).resolve()
    profile = b.parent.name if b.parent.parent.name == "target" else "unknown"
    info["simulator_binary"] = str(b)
    info["simulator_profile"] = profile
    try:
        info["simulator_binary_mtime"] = datetime.datetime.fromtimestamp(
            b.stat().st_mtime, datetime.timezone.utc).isoformat(timespec="seconds")
    except OSError:
        pass
    try:
        info["git_commit"] = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"],
                                            capture_output=True, text=True).stdout.strip()
        info["git_dirty"] = bool(subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True).stdout.strip())
    except Exception:
        pass
    return info


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per client phase")
    ap.add_argument("--clients", type=int, default=8, help="client processes")
    ap.add_argument("--vms", type=int, default=100000, help="VMs for the scale phase")
    ap.add_argument("--max-objects", type=int, default=1000, help="page size (maxObjects)")
    ap.add_argument("--mixed-vms", type=int, default=32,
                    help="pre-populated VMs for the client phases")
    ap.add_argument("--lifecycle-every", type=int, default=10,
                    help="a VM lifecycle every N mixed iterations")
    ap.add_argument("--skip-scale", action="store_true")
    ap.add_argument("--skip-mixed", action="store_true")
    ap.add_argument("--skip-raw-simple", action="store_true",
                    help="skip the raw-SOAP simple-call phase")
    ap.add_argument("--bin", default=None,
                    help="simulator binary (default: $VCSIM_BIN or target/release/vcenter-sim)")
    args = ap.parse_args()

    binary = args.bin or os.environ.get("VCSIM_BIN") or str(REPO / "target/release/vcenter-sim")
    if not Path(binary).is_file():
        ap.error("no simulator binary at %s: run `cargo build --release -p vcenter-sim`" % binary)

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    atexit.register(cleanup)

    out = {"machine": machine_info(binary),
           "args": {k: v for k, v in vars(args).items()}}
    if out["machine"]["simulator_profile"] != "release":
        log("WARNING: simulator binary is not a release build (%s)"
            % out["machine"]["simulator_profile"])
    failures = []
    t0 = time.time()
    interrupted = None
    try:
        if not args.skip_mixed:
            try:
                phase_mixed(args, binary, out)
            except Exception as exc:
                failures.append({"phase": "mixed", "error": "%s: %s" % (type(exc).__name__, exc),
                                 "traceback": traceback.format_exc()[-3000:]})
                log("mixed phase FAILED: %s" % exc)
            finally:
                cleanup()
        if not args.skip_scale:
            try:
                phase_scale(args, binary, out)
            except Exception as exc:
                failures.append({"phase": "scale", "error": "%s: %s" % (type(exc).__name__, exc),
                                 "traceback": traceback.format_exc()[-3000:]})
                log("scale phase FAILED: %s" % exc)
    except (KeyboardInterrupt, SystemExit) as exc:
        interrupted = exc
        failures.append({"phase": "interrupted", "error": "%s %s" % (type(exc).__name__, exc)})
        log("interrupted: cleaning up")
    finally:
        cleanup()
    out["total_wall_s"] = round(time.time() - t0, 1)
    out["failures"] = failures
    summary = {}
    if "mixed" in out:
        m = out["mixed"]
        summary["simple_calls_per_s"] = m["simple"]["calls_per_s"]
        summary["simple_p50_ms"] = m["simple"]["latency"].get("p50_ms")
        summary["simple_p99_ms"] = m["simple"]["latency"].get("p99_ms")
        if "simple_raw" in m:
            summary["simple_raw_calls_per_s"] = m["simple_raw"]["calls_per_s"]
        summary["mixed_calls_per_s"] = m["mixed"]["calls_per_s"]
        summary["mixed_lifecycles_per_s"] = m["mixed"]["lifecycles_per_s"]
    if "scale" in out:
        s = out["scale"]
        summary["scale_fresh_start_s"] = s["fresh_start"]["spawn_to_info_file_s"]
        summary["scale_restart_s"] = s.get("restart", {}).get("spawn_to_info_file_s")
        summary["scale_rss_mib_after_retrieval"] = round(
            s.get("rss_after_retrieval_kib", {}).get("VmRSS", 0) / 1024, 1)
        summary["paged_raw_server_time_s"] = s.get("raw_http", {}).get("server_time_s")
        summary["paged_pyvmomi_wall_s"] = s.get("pyvmomi", {}).get("wall_s")
    out["summary"] = summary
    sys.stdout.write(json.dumps(out, indent=2, default=str) + "\n")
    sys.stdout.flush()
    if isinstance(interrupted, SystemExit) and isinstance(interrupted.code, int):
        return interrupted.code
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

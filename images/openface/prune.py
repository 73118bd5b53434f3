#!/usr/bin/env python3
"""Prune the openface image's node_modules to what `node openface.js` loads.

usage: prune.py NODE_MODULES MODEL_DIR

The @tensorflow packages keep their package.json, their node entry point
(package.json "main", one self-contained bundle) and the wasm backend's .wasm
files; face-api keeps its node-wasm build, and the three models the service
uses move to MODEL_DIR. Other packages lose maps, type declarations and docs.
"""
import json
import os
import shutil
import sys

MODELS = ("ssd_mobilenetv1_model", "face_landmark_68_model", "face_recognition_model")
DROP_SUFFIX = (".map", ".d.ts", ".ts", ".md", ".markdown")


def keep_only(pkg, keep):
    for dirpath, dirnames, filenames in os.walk(pkg, topdown=False):
        for f in filenames:
            p = os.path.join(dirpath, f)
            if os.path.relpath(p, pkg) not in keep and not (p.endswith(".wasm") and "tfjs-backend-wasm" in pkg):
                os.unlink(p)
        if not os.listdir(dirpath):
            os.rmdir(dirpath)


def main_file(pkg):
    with open(os.path.join(pkg, "package.json")) as f:
        return os.path.normpath(json.load(f)["main"])


def main():
    nm, models = sys.argv[1], sys.argv[2]
    fa = os.path.join(nm, "@vladmandic", "face-api")
    os.makedirs(models, exist_ok=True)
    for m in MODELS:
        for f in (m + "-weights_manifest.json", m + ".bin"):
            shutil.copy(os.path.join(fa, "model", f), os.path.join(models, f))
    keep_only(fa, {"package.json", "dist/face-api.node-wasm.js"})
    tf = os.path.join(nm, "@tensorflow")
    for name in os.listdir(tf):
        pkg = os.path.join(tf, name)
        keep_only(pkg, {"package.json", main_file(pkg)})
    for dirpath, _, filenames in os.walk(nm):
        for f in filenames:
            if f.endswith(DROP_SUFFIX):
                os.unlink(os.path.join(dirpath, f))
    # tfjs's bundles need no polyfill on Node.js 18; core-js (14 MB) is
    # only a dependency of its converter tooling.
    for d in (".bin", "core-js"):
        shutil.rmtree(os.path.join(nm, d), ignore_errors=True)


if __name__ == "__main__":
    main()

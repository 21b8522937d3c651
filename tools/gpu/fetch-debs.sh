#!/usr/bin/env bash
# Run HERE (the CPU machine, Debian 12), once per checkout, before a device call that builds the
# whole project: downloads the Debian packages the GPU machine lacks (yaml-cpp, fmt, nlohmann-json,
# CLI11, GoogleTest, sentencepiece, pkgconf, gloo's headers, the fortunes corpus) into .gpu-debs/
# (git-ignored; about 3 MB). tools/gpu/check.sh unpacks them there with dpkg -x into a private
# prefix. Pass it to the device tool as carry: [".gpu-debs"].
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PACKAGES=(libyaml-cpp-dev libyaml-cpp0.7 libfmt-dev libfmt9 nlohmann-json3-dev libcli11-dev libgtest-dev
          libsentencepiece-dev libsentencepiece0 pkgconf pkgconf-bin libpkgconf3 libgloo-dev libgloo0
          fortunes fortunes-min)
mkdir -p .gpu-debs
cd .gpu-debs
# apt-get download drops privileges to _apt where it can; a root-owned folder makes it warn only.
apt-get download "${PACKAGES[@]}" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true
ls -1 ./*.deb | wc -l | xargs printf '%s packages in .gpu-debs\n'

#!/usr/bin/env bash
# Builds the release artifacts into dist/:
#
#   spfmilter_<version>_linux_<arch>        static binaries (amd64, arm64)
#   spfmilter_<version>_<arch>.deb          Debian packages (amd64, arm64)
#   spfmilter-<version>.<arch>.rpm          RPM packages (x86_64, aarch64)
#   SHA256SUMS
#
# Usage: bash deploy/package.sh [VERSION]   (DIST=DIR writes there instead)
#
# VERSION defaults to the last v* tag without its v, else to
# 0.0.0~git<commit date>.<commit> (sorting before any release). The build is
# reproducible: every time stamp comes from the last commit (SOURCE_DATE_EPOCH),
# so two builds of one commit are byte-identical. The packages are made by
# nfpm, pinned in deploy/package/go.mod (a module of its own, so that
# spfmilter's go.mod stays small).
set -euo pipefail
cd "$(dirname "$0")/.."

SOURCE_DATE_EPOCH="$(git log -1 --format=%ct)"
export SOURCE_DATE_EPOCH
rev="$(git rev-parse --short=12 HEAD)"
version="${1:-}"
if [ -z "$version" ]; then
	if tag="$(git describe --tags --exact-match --match 'v[0-9]*' 2>/dev/null)"; then
		version="${tag#v}"
	else
		version="0.0.0~git$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d%H%M%S).$(git rev-parse --short=7 HEAD)"
	fi
fi
if ! [[ "$version" =~ ^[0-9][A-Za-z0-9.+~]*$ ]]; then
	echo "package.sh: bad version \"$version\" (want a digit first, then letters, digits, . + ~)" >&2
	exit 2
fi

dist="${DIST:-dist}"
mkdir -p "$dist"
rm -f "$dist"/spfmilter_* "$dist"/spfmilter-*.rpm "$dist"/SHA256SUMS
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT

# nfpm, built once for this machine.
nfpm="$stage/nfpm"
(cd deploy/package && go build -trimpath -o "$nfpm" github.com/goreleaser/nfpm/v2/cmd/nfpm)

# The man pages are committed (TestManPages keeps them generated from the
# settings table); compressed without names or time stamps.
for page in spfmilter.8 spfmilter.yaml.5; do
	gzip -9n <"deploy/package/man/$page" >"$stage/$page.gz"
done
# The Debian changelog of a native package: one entry for this build.
{
	echo "spfmilter ($version) unstable; urgency=medium"
	echo
	echo "  * Built from commit $rev."
	echo
	echo " -- spfmilter maintainers <spfmilter@users.noreply.github.com>  $(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n >"$stage/changelog.gz"
# The unit of deploy/systemd with the packaged paths.
sed -e 's|/usr/local/bin/spfmilter|/usr/sbin/spfmilter|g' \
	-e 's|/etc/spfmilter\.yaml|/etc/spfmilter/spfmilter.yaml|g' \
	deploy/systemd/spfmilter.service >"$stage/spfmilter.service"

# pkg FORMAT FILE runs nfpm for $arch, quiet unless it fails.
pkg() {
	local out
	if ! out="$(ARCH="$arch" VERSION="$version" STAGE="$stage" \
		"$nfpm" package --config deploy/package/nfpm.yaml --packager "$1" --target "$2" 2>&1)"; then
		echo "$out" >&2
		return 1
	fi
}

for arch in amd64 arm64; do
	bin="$dist/spfmilter_${version}_linux_$arch"
	# -trimpath and -buildvcs=false keep the binary independent of where
	# the tree is and of its uncommitted state; the version is stamped (a
	# snapshot's version names its commit).
	CGO_ENABLED=0 GOOS=linux GOARCH="$arch" GOFLAGS= \
		go build -trimpath -buildvcs=false -ldflags "-s -w -buildid= -X main.version=$version" -o "$bin" .
	touch -d "@$SOURCE_DATE_EPOCH" "$bin"
	cp "$bin" "$stage/spfmilter"
	case "$arch" in
	amd64) rpmarch=x86_64 ;;
	arm64) rpmarch=aarch64 ;;
	esac
	pkg deb "$dist/spfmilter_${version}_$arch.deb"
	pkg rpm "$dist/spfmilter-$version.$rpmarch.rpm"
done

(cd "$dist" && sha256sum -- * >SHA256SUMS)
cat "$dist/SHA256SUMS"

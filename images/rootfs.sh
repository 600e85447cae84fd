#!/bin/sh
# rootfs.sh DIR PACKAGE...
# Copies into DIR the files of the installed Debian PACKAGEs and of every package they depend
# on, and nothing else: no shell, no package manager, no documentation. Run in the Dockerfile's
# rootfs stage (a Debian 12 image with the packages installed); DIR becomes a `FROM scratch`
# image's root. Prints the packages it took, one per line, to DIR/etc/netheal-image-packages.
set -eu

dest="$1"
shift

# Dependencies of one installed package: first alternative of each `a | b`, without versions
# and architecture qualifiers.
depends() {
  dpkg-query -W -f='${Pre-Depends},${Depends}' "$1" |
    tr ',' '\n' | sed -e 's/|.*//' -e 's/(.*)//' -e 's/:any//' -e 's/[[:space:]]//g' |
    grep -v '^$' || true
}

taken=" "
queue="$*"
while [ -n "$queue" ]; do
  # shellcheck disable=SC2086 # the queue is a list of package names
  set -- $queue
  package="$1"
  shift
  queue="$*"
  case "$taken" in *" $package "*) continue ;; esac
  dpkg-query -W "$package" >/dev/null 2>&1 || { echo "rootfs.sh: $package is not installed" >&2; exit 1; }
  taken="$taken$package "
  queue="$queue $(depends "$package" | tr '\n' ' ')"
done

# Debian 12 is merged-/usr: keep /bin, /sbin, /lib and /lib64 as links into /usr.
mkdir -p "$dest/usr/bin" "$dest/usr/sbin" "$dest/usr/lib" "$dest/usr/lib64" "$dest/etc" "$dest/tmp" "$dest/run"
for dir in bin sbin lib lib64; do
  [ -e "$dest/$dir" ] || ln -s "usr/$dir" "$dest/$dir"
done
chmod 1777 "$dest/tmp"

for package in $taken; do
  dpkg-query -L "$package" | while read -r path; do
    case "$path" in
      # Documentation, character set converters (iconv), and iptables-apply (a shell script:
      # there is no shell to run it).
      /usr/share/doc/* | /usr/share/man/* | /usr/share/info/* | /usr/share/lintian/* | /usr/share/locale/* | \
        */gconv/* | */iptables-apply | */ip6tables-apply) continue ;;
    esac
    if [ -L "$path" ] || [ -f "$path" ]; then
      cp -a --parents "$path" "$dest"
    fi
  done
done
echo "$taken" | tr ' ' '\n' | grep -v '^$' | sort > "$dest/etc/netheal-image-packages"
ldconfig -r "$dest"

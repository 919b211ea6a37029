#!/usr/bin/env bash
# `make local-ca STACK=...`: the certificate of the local stack's CA (platform:localTls) into
# build/<stack>-ca.crt, for clients to trust (curl --cacert build/<stack>-ca.crt).
#
# cert-manager made the CA and keeps its key in the Secret platform-ca of its namespace
# (infra/cluster/cert_manager.py). Only the Secret's tls.crt, the CA's own certificate, is written out:
# kubectl receives the whole Secret, and nothing here prints or stores anything else of it.
set -euo pipefail

stack=${1:?usage: local-ca.sh STACK}
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

fail() { echo "make local-ca: $*" >&2; exit 1; }

[ -f "Pulumi.$stack.yaml" ] || fail "there is no Pulumi.$stack.yaml"
cloud=$(sed -nE 's/^ *platform:cloud: *"?([a-z]+)"?.*/\1/p' "Pulumi.$stack.yaml")
[ "$cloud" = local ] ||
  fail "stack $stack targets ${cloud:-no cloud}: its certificates come from ACME (platform:domain), whose roots clients trust already"
command -v kubectl >/dev/null || fail "kubectl is not installed: https://kubernetes.io/docs/tasks/tools/"
context=$(sed -nE 's/^ *platform:kubeContext: *"?([^"]+)"?.*/\1/p' "Pulumi.$stack.yaml")

encoded=$(kubectl ${context:+--context "$context"} --namespace cert-manager \
  get secret platform-ca --output 'jsonpath={.data.tls\.crt}') ||
  fail "no CA yet: the Secret cert-manager/platform-ca is missing. Is platform:localTls true and the stack up? Then see why with: kubectl describe certificate -n cert-manager platform-ca"
pem=$(printf '%s' "$encoded" | base64 --decode)
case "$pem" in
  "-----BEGIN CERTIFICATE-----"*) ;;
  *) fail "the Secret cert-manager/platform-ca holds no certificate yet: kubectl describe certificate -n cert-manager platform-ca" ;;
esac

mkdir -p build
printf '%s\n' "$pem" > "build/$stack-ca.crt"
echo "Wrote build/$stack-ca.crt: curl --cacert build/$stack-ca.crt https://..."

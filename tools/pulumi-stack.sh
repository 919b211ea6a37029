#!/usr/bin/env bash
# `make preview|up|drift|destroy STACK=... [ARGS=...]`: the real Pulumi engine with this repository's defaults.
# ARGS go to pulumi as they are (e.g. ARGS=--yes to approve without a prompt, as CI must).
#
# - State: $PULUMI_BACKEND_URL if set (Pulumi Cloud, s3://, gs://, azblob://), otherwise a file
#   backend in .pulumi-state/ (git-ignored), so no Pulumi Cloud account is needed.
# - Secrets: the passphrase provider. Without PULUMI_CONFIG_PASSPHRASE(_FILE), a random passphrase
#   is kept in .pulumi-state/passphrase for the local backend only: back it up, or secrets in the
#   stack's state are lost with it.
# - Prerequisites are checked first, and what is missing is said with how to get it.
set -euo pipefail

action=${1:?usage: pulumi-stack.sh preview|up|drift|destroy STACK [PULUMI ARGS...]}
stack=${2:?usage: pulumi-stack.sh preview|up|drift|destroy STACK [PULUMI ARGS...]}
shift 2
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

fail() { echo "make $action: $*" >&2; exit 1; }

# The cluster's kubeconfig signs in through the cloud's exec plugin, which the Kubernetes provider
# runs on this machine: without it every Kubernetes step of the stack fails.
require_cloud_tool() {
  local tool how
  case "$1" in
    aws) tool=aws how="install the AWS CLI v2: https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html" ;;
    gcp) tool=gke-gcloud-auth-plugin how="run 'gcloud components install gke-gcloud-auth-plugin' (or apt-get install google-cloud-cli-gke-gcloud-auth-plugin): https://cloud.google.com/kubernetes-engine/docs/how-to/cluster-access-for-kubectl" ;;
    azure) tool=kubelogin how="run 'az aks install-cli' (or brew install Azure/kubelogin/kubelogin): https://azure.github.io/kubelogin/install.html" ;;
    *) return 0 ;;
  esac
  command -v "$tool" >/dev/null || fail "stack $stack targets $1 and its kubeconfig runs '$tool', which is not installed: $how"
}

[ -f "Pulumi.$stack.yaml" ] || fail "there is no Pulumi.$stack.yaml; committed stacks: $(ls Pulumi.*.yaml | sed -E 's/Pulumi\.(.*)\.yaml/\1/' | grep -v '^yaml$' | paste -sd' ')"
command -v pulumi >/dev/null ||
  fail "the Pulumi CLI is not installed. Get it from https://www.pulumi.com/docs/iac/download-install/ (macOS: brew install pulumi/tap/pulumi; Linux: curl -fsSL https://get.pulumi.com | sh), then run this again."

cloud=$(sed -nE 's/^ *platform:cloud: *"?([a-z]+)"?.*/\1/p' "Pulumi.$stack.yaml")
case "$cloud" in
  local)
    command -v kubectl >/dev/null && context=$(kubectl config current-context 2>/dev/null) || context=""
    wanted=$(sed -nE 's/^ *platform:kubeContext: *"?([^"]+)"?.*/\1/p' "Pulumi.$stack.yaml")
    [ -n "$wanted$context" ] ||
      fail "stack $stack deploys to your current Kubernetes context and there is none. Start one (kind create cluster, minikube start, k3d cluster create, or enable Kubernetes in Docker Desktop) and check it with: kubectl config current-context"
    echo "Kubernetes context: ${wanted:-$context}"
    ;;
  aws) [ -n "${AWS_PROFILE:-}${AWS_ACCESS_KEY_ID:-}${AWS_WEB_IDENTITY_TOKEN_FILE:-}" ] || [ -f "$HOME/.aws/credentials" ] || [ -f "$HOME/.aws/config" ] ||
    fail "stack $stack targets aws and no AWS credentials were found: run 'aws configure sso' (or set AWS_PROFILE)." ;;
  gcp) [ -n "${GOOGLE_APPLICATION_CREDENTIALS:-}${GOOGLE_CREDENTIALS:-}" ] || [ -d "$HOME/.config/gcloud" ] ||
    fail "stack $stack targets gcp and no Google credentials were found: run 'gcloud auth application-default login'." ;;
  azure) [ -n "${ARM_CLIENT_ID:-}" ] || [ -d "$HOME/.azure" ] ||
    fail "stack $stack targets azure and no Azure credentials were found: run 'az login'." ;;
  *) fail "Pulumi.$stack.yaml has no valid platform:cloud (aws, gcp, azure or local)." ;;
esac
require_cloud_tool "$cloud"

if [ -z "${PULUMI_BACKEND_URL:-}" ]; then
  mkdir -p .pulumi-state
  export PULUMI_BACKEND_URL="file://$repo/.pulumi-state"
  if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
    if [ ! -f .pulumi-state/passphrase ]; then
      (umask 077 && head -c 32 /dev/urandom | base64 > .pulumi-state/passphrase)
      echo "Created .pulumi-state/passphrase: it encrypts this stack's secrets; keep a copy."
    fi
    export PULUMI_CONFIG_PASSPHRASE_FILE="$repo/.pulumi-state/passphrase"
  fi
fi

# The pack's prod-only rules read the environment from the stack's policy config (strict without one).
policy=(--policy-pack policies)
[ -f "policies/config/$stack.json" ] && policy+=(--policy-pack-config "policies/config/$stack.json")

# Pulumi runs the program's dynamic providers (infra/app/rollout.py) from main's folder, infra/, and finds
# Pulumi.yaml's `virtualenv: .venv` from there (pulumi/pulumi#7061): the same environment under that name.
if [ -d infra ] && [ ! -e infra/.venv ]; then ln -s ../.venv infra/.venv; fi

pulumi stack select --create "$stack" --secrets-provider passphrase >/dev/null
case "$action" in
  preview) pulumi preview --stack "$stack" "${policy[@]}" --diff "$@" ;;
  # --refresh: what changed outside Pulumi (what `make drift` finds) is read first, so `up` puts it back.
  up) pulumi up --stack "$stack" --refresh "${policy[@]}" "$@" ;;
  # Refresh reads the live objects first: any difference from the program and config is drift, shown
  # by the diff above the failure (a hand edit, or a change committed and not yet applied).
  drift) pulumi preview --stack "$stack" --refresh --expect-no-changes --diff "$@" ||
    fail "stack $stack differs from its program and config (the diff above); make up STACK=$stack puts it back" ;;
  destroy) pulumi destroy --stack "$stack" "$@" ;;
  *) fail "unknown action (preview, up, drift or destroy)" ;;
esac

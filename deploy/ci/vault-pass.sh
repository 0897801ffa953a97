#!/bin/sh
# An executable vault password file for CI: trustplay (like ansible-playbook) runs it and reads
# the password from its output, so the password goes from the CI secret to trustplay's memory
# without being written to disk. Copy to ci/vault-pass.sh in your repository, mode 0755.
if [ -z "${TRUSTPLAY_VAULT_PASSWORD:-}" ]; then
  echo "TRUSTPLAY_VAULT_PASSWORD is not set: add it as a CI secret (masked) and pass it to the job" >&2
  exit 1
fi
printf '%s\n' "$TRUSTPLAY_VAULT_PASSWORD"

# A shell app: pallet runs start.sh with bash on the run image (it need not be executable).
echo "Hello from shell-app (bash ${BASH_VERSINFO[0]}.${BASH_VERSINFO[1]})"
echo "args: $*"

#!/bin/bash
while pgrep -f sitting4.sh >/dev/null; do sleep 5; done
OUT=/tmp/bench/i12/acmp N=3 /tmp/acmp.sh before after
echo ACMP DONE

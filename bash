/tmp/me/lat2.sh: line 9: 11: Bad file descriptor

#!/bin/sh
# The Heroku Platform API calls that terraform-provider-heroku has no resource for, run by the configuration's
# local-exec provisioners (main.tf). Needs curl. The API key comes from HEROKU_API_KEY, else from the netrc
# file the Heroku CLI writes (NETRC_PATH, else ~/.netrc), as for the provider; HEROKU_API_URL as well.
#
#   heroku-api.sh wait-release APP_ID RELEASE_ID   wait until the release phase ends; fail unless it succeeded
#   heroku-api.sh acm-enable APP_ID                turn Automated Certificate Management on
#   heroku-api.sh acm-disable APP_ID               turn it off
set -eu

api_url=${HEROKU_API_URL:-https://api.heroku.com}
api_url=${api_url%/}
# How long a release phase may run and how often to look, and how long one API call may take (seconds).
timeout=${HEROKU_RELEASE_TIMEOUT:-1800}
interval=${HEROKU_RELEASE_POLL:-5}
max_time=${HEROKU_API_MAX_TIME:-60}

die() {
  echo "heroku-api.sh: $*" >&2
  exit 1
}

# call METHOD PATH: prints the response body; fails with the API's message on an HTTP error. The key goes
# through curl's standard input, never its command line (where `ps` would show it).
call() {
  if [ -n "${HEROKU_API_KEY:-}" ]; then
    auth="header = \"Authorization: Bearer ${HEROKU_API_KEY}\""
  else
    auth="netrc-file = \"${NETRC_PATH:-$HOME/.netrc}\""
  fi
  body=$(printf '%s\n' "$auth" | curl --config - --silent --show-error --max-time "$max_time" --request "$1" \
    --header 'Accept: application/vnd.heroku+json; version=3' --header 'Content-Type: application/json' \
    --write-out '\n%{http_code}' "$api_url$2") || die "$1 $2: curl failed"
  code=$(printf '%s' "$body" | tail -n 1)
  body=$(printf '%s' "$body" | sed '$d')
  case $code in
    2??) printf '%s\n' "$body" ;;
    *) die "$1 $2 answered HTTP $code: $(field message "$body")" ;;
  esac
}

# field NAME JSON: the value of the last field NAME in a Heroku API object, string or number. Good for the
# fields read here (a release's status and version, an error's message), which no nested object repeats.
field() {
  printf '%s' "$2" | tr -d '\n' | sed -n -e "s/^.*\"$1\" *: *\"\([^\"]*\)\".*$/\1/p" \
    -e "t" -e "s/^.*\"$1\" *: *\([0-9][0-9]*\).*$/\1/p" | head -n 1
}

wait_release() {
  [ $# -eq 2 ] || die "usage: heroku-api.sh wait-release APP_ID RELEASE_ID"
  app=$1
  release=$2
  waited=0
  while :; do
    json=$(call GET "/apps/$app/releases/$release")
    status=$(field status "$json")
    version=$(field version "$json")
    case $status in
      succeeded)
        echo "release $release (v$version) succeeded"
        return 0
        ;;
      pending) ;;
      *)
        echo "release $release (v$version) of app $app ended with status \"$status\": its release phase" \
          "(Procfile release:) failed, so no dyno was scaled. Its output: heroku releases:output v$version --app $app" >&2
        exit 1
        ;;
    esac
    [ "$waited" -lt "$timeout" ] || die "release $release (v$version) of app $app is still pending after ${timeout}s"
    sleep "$interval"
    waited=$((waited + interval))
  done
}

[ $# -ge 1 ] || die "usage: heroku-api.sh wait-release|acm-enable|acm-disable ..."
command=$1
shift
case $command in
  wait-release) wait_release "$@" ;;
  acm-enable)
    [ $# -eq 1 ] || die "usage: heroku-api.sh acm-enable APP_ID"
    call POST "/apps/$1/acm" >/dev/null
    echo "Automated Certificate Management is on for app $1 (heroku certs:auto shows the certificates)"
    ;;
  acm-disable)
    [ $# -eq 1 ] || die "usage: heroku-api.sh acm-disable APP_ID"
    call DELETE "/apps/$1/acm" >/dev/null
    echo "Automated Certificate Management is off for app $1"
    ;;
  *) die "unknown command $command (wait-release, acm-enable, acm-disable)" ;;
esac

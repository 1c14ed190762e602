#!/usr/bin/env bash
# Installs the Debian packages the tests and `make run` need, only when missing.
# Idempotent and quiet when everything is present, so `make test` can call it every time.
set -euo pipefail

packages=(
  php8.2-cli php8.2-opcache   # the PHP workers
  phpunit                     # the PHP library's tests
  php-nyholm-psr7             # PSR-17 factories for the PSR-7 worker tests and the example app
  php-psr-http-message php-psr-http-factory
  # The framework bridges' tests: real Laravel and Symfony apps (examples/laravel, examples/symfony)
  php-laravel-framework php8.2-sqlite3
  php-symfony-framework-bundle php-symfony-runtime php-symfony-security-bundle
  php-symfony-twig-bundle php-twig php-symfony-dotenv php-symfony-yaml
  prometheus                  # promtool (metrics format check) and the e2e Prometheus server
  rabbitmq-server beanstalkd nats-server   # the jobs brokers, started by the jobs tests on loopback
  php-amqp php-google-protobuf             # the plain php-amqp consumer (bench) and the PHP producer's protobuf
)
if [[ "${PACER_DEPS_EXTRA:-}" != "" ]]; then
  # shellcheck disable=SC2206
  packages+=(${PACER_DEPS_EXTRA})
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # policy-rc.d keeps services (prometheus, nginx, php-fpm) from starting on install.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

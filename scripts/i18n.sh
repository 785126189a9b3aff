#!/usr/bin/env bash
# Keep the gettext catalogs in step with the sources (Babel's pybabel):
#   bash scripts/i18n.sh          extract the message ids, merge them into de/es, compile
#   bash scripts/i18n.sh compile  only compile the .po files into the .mo files twofa reads
# The .mo files are committed, so every install has them (tests/test_i18n.py checks they
# match the .po files and that German and Spanish translate every message id).
set -euo pipefail
cd "$(dirname "$0")/.."
PYBABEL=${PYBABEL:-.venv/bin/pybabel}
LOCALES=services/locale
# The functions whose first (or, for translate, second) argument is a message id: the
# domain errors (services/errors.py), the N_ marker, and services.i18n.catalogs.translate.
KEYWORDS=(-k N_ -k translate:2 -k InvalidInput -k NotFound -k Conflict -k Unauthenticated
          -k Forbidden -k RateLimited -k InvalidCredentials -k InvalidCode -k Throttled
          -k Unavailable -k TwofaError)
if [ "${1:-}" != compile ]; then
  # --ignore-dirs: not Babel's default `_*`, which would skip templates/emails/_base.
  "$PYBABEL" -q extract -F babel.cfg "${KEYWORDS[@]}" --no-location --sort-output \
    --ignore-dirs ".* __pycache__ build" \
    --project twofa --copyright-holder "twofa" -o "$LOCALES/messages.pot" .
  for lang in de es; do
    # -w 100: the width the .po files are kept at (the .pot keeps pybabel's default).
    "$PYBABEL" -q update -i "$LOCALES/messages.pot" -d "$LOCALES" -l "$lang" --no-fuzzy-matching -w 100 \
      --ignore-obsolete
  done
fi
"$PYBABEL" -q compile -d "$LOCALES"  # fuzzy entries are left out (and a test refuses them)

"""Languages and time zones: which ones twofa speaks, its gettext catalogs (services/locale/),
and dates said in a reader's language and zone. Domain code: no web framework here."""

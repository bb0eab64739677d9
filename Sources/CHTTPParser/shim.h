// Node's http-parser from Debian's libhttp-parser-dev (the /metrics and /healthz endpoint's request parser).
#include <http_parser.h>

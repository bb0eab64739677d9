#!/usr/bin/env bash
# r2ec.sh: a shell client of the r2ec protocol (docs/protocol.md), one call per run. Payloads via protoc
# --encode/--decode against ../../Protos, frames built and parsed with printf/od/head/tail, sent with socat.
# Run `r2ec.sh --help` for the commands. Prints the answer on stdout (one line per item, or with --json the response
# message as proto3 JSON); on a non-OK status prints "error: CODE_NAME: message" to stderr and exits 1.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
protos=${R2EC_PROTOS:-$script_dir/../../Protos}
proto_files=(r2ec/v1/wire.proto r2ec/v1/health.proto r2ec/v1/recommender.proto r2ec/v1/admin.proto
             r2ec/v1/events.proto)
code_names=(OK CANCELLED UNKNOWN INVALID_ARGUMENT DEADLINE_EXCEEDED NOT_FOUND ALREADY_EXISTS PERMISSION_DENIED
            RESOURCE_EXHAUSTED FAILED_PRECONDITION ABORTED OUT_OF_RANGE UNIMPLEMENTED INTERNAL UNAVAILABLE
            DATA_LOSS UNAUTHENTICATED)

usage() {
    cat >&2 <<'USAGE'
usage: r2ec.sh [options] HOST:PORT COMMAND [ARGS...]

commands:
  health [SERVICE]          the serving state: SERVING, NOT_SERVING, ...
  recommend [ITEM_ID...]    ranked items for a history of item ids (and/or --user): "rank item_id score title"
  similar ITEM_ID           nearest neighbours of an item: "rank item_id score title"
  items ITEM_ID...          catalogue entries: "item_id year title"
  info [MODEL]              the model's description (protobuf text format)
  record USER ITEM_ID...    records that USER interacted with each item, now: "recorded N duplicates M"
  history USER              USER's latest events, oldest first: "timestamp item_id kind rating"

options:
  --top-k N                 items to return (recommend, similar; default 10)
  --user ID                 recommend for this user id (the store's latest events of that user)
  --model NAME              the loaded model to ask (default: the server's default model)
  --limit N                 history: the latest N events (default: the server's, 100)
  --kind KIND               record: the events' kind (default: interaction)
  --json                    print the whole response as proto3 JSON (field names as in the .proto files,
                            64-bit integers as strings, fields at their default value left out)
  --token-file F            bearer token from the first line of F
  --timeout S               deadline in whole seconds (default 30)
USAGE
    exit 2
}

fail() {  # fail CODE_NAME MESSAGE
    printf 'error: %s: %s\n' "$1" "$2" >&2
    exit 1
}

# ---- arguments ----------------------------------------------------------------------------------------------

top_k=10
token=""
timeout_s=30
model=""
user=""
limit=0
kind=""
json=0
positional=()
while (($#)); do
    case $1 in
        --top-k) top_k=${2:?--top-k needs a number}; shift 2 ;;
        --token-file) token=$(head -n 1 "${2:?--token-file needs a file}" | tr -d '\r\n'); shift 2 ;;
        --timeout) timeout_s=${2:?--timeout needs seconds}; shift 2 ;;
        --model) model=${2?--model needs a name}; shift 2 ;;
        --user) user=${2?--user needs an id}; shift 2 ;;
        --limit) limit=${2:?--limit needs a number}; shift 2 ;;
        --kind) kind=${2:?--kind needs a kind}; shift 2 ;;
        --json) json=1; shift ;;
        -h|--help) usage ;;
        --) shift; positional+=("$@"); break ;;
        -*) echo "r2ec.sh: unknown option $1" >&2; usage ;;
        *) positional+=("$1"); shift ;;
    esac
done
((${#positional[@]} >= 2)) || usage
address=${positional[0]}
command=${positional[1]}
args=("${positional[@]:2}")
[[ $address == *:* ]] || usage
host=${address%:*}
port=${address##*:}
[[ $top_k =~ ^[0-9]+$ ]] || { echo "r2ec.sh: --top-k needs a number" >&2; exit 2; }
[[ $timeout_s =~ ^[0-9]+$ ]] || { echo "r2ec.sh: --timeout needs whole seconds" >&2; exit 2; }
[[ $limit =~ ^[0-9]+$ ]] || { echo "r2ec.sh: --limit needs a number" >&2; exit 2; }
for tool in protoc socat od; do
    command -v "$tool" >/dev/null || { echo "r2ec.sh: $tool is required" >&2; exit 2; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# ---- protobuf text format <-> binary ------------------------------------------------------------------------

quote() {  # a protobuf text-format string literal
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    printf '"%s"' "$s"
}

encode() {  # encode MESSAGE_TYPE TEXT OUT_FILE
    printf '%s' "$2" | protoc -I "$protos" --encode="r2ec.v1.$1" "${proto_files[@]}" >"$3"
}

decode() {  # decode MESSAGE_TYPE IN_FILE -> text format on stdout
    protoc -I "$protos" --decode="r2ec.v1.$1" "${proto_files[@]}" <"$2"
}

# The schema the JSON printer needs, from the .proto files: one "Message.field type repeated(0|1)" line per field
# (oneof members belong to their message; enums are skipped).
schema() {
    local file
    for file in "${proto_files[@]}"; do
        awk '
            { sub(/\/\/.*/, "") }
            $1 == "message" { message = $2; next }
            $1 == "enum" { in_enum = 1; next }
            in_enum { if ($0 ~ /}/) in_enum = 0; next }
            $1 == "oneof" || $1 == "option" || $1 == "}" || NF < 4 { next }
            { repeated = ($1 == "repeated"); if (repeated) $0 = substr($0, index($0, "repeated") + 8)
              if ($3 == "=") print message "." $2, $1, repeated }
        ' "$protos/$file"
    done
}

# to_json: a MESSAGE_TYPE in protobuf text format (protoc --decode) on stdin -> one line of proto3 JSON on stdout
# (field names as in the .proto files, which proto3 JSON parsers accept beside the camelCase ones). Strings are
# unescaped (octal escapes back to their UTF-8 bytes) and escaped again for JSON; enum names become strings;
# inf/nan become "Infinity"/"NaN".
to_json() {  # to_json MESSAGE_TYPE
    LC_ALL=C awk -v top="$1" -v schema="$(schema)" '
        BEGIN {
            count = split(schema, lines, "\n")
            for (i = 1; i <= count; i++) { split(lines[i], f, " "); type[f[1]] = f[2]; repeated[f[1]] = f[3] }
            depth = 0; message[0] = top; first[0] = 1; open_array[0] = ""; printf "{"
        }
        function close_array(d) { if (open_array[d] != "") { printf "]"; open_array[d] = "" } }
        function start_key(key) {
            if (open_array[depth] == key) { printf ","; return }  # the next element of a repeated field
            close_array(depth)
            if (!first[depth]) printf ","
            first[depth] = 0
            printf "\"%s\":", key
            if (repeated[message[depth] "." key]) { printf "["; open_array[depth] = key }
        }
        function octal(s,   v, i) { v = 0; for (i = 1; i <= 3; i++) v = v * 8 + substr(s, i, 1); return v }
        function json_string(body,   out, i, c, n, v) {
            out = ""; n = length(body)
            for (i = 1; i <= n; i++) {
                c = substr(body, i, 1)
                if (c == "\\") {
                    c = substr(body, ++i, 1)
                    if (c ~ /[0-7]/) { v = octal(substr(body, i, 3)); i += 2
                        out = out (v < 32 || v == 127 ? sprintf("\\u%04x", v) : v == 34 ? "\\\"" : v == 92 ? "\\\\" : sprintf("%c", v))
                    } else if (c == "n") out = out "\\n"
                    else if (c == "t") out = out "\\t"
                    else if (c == "r") out = out "\\r"
                    else if (c == "\"") out = out "\\\""
                    else if (c == "\\") out = out "\\\\"
                    else out = out c
                } else out = out c
            }
            return "\"" out "\""
        }
        function json_value(key, value) {
            if (value ~ /^".*"$/) return json_string(substr(value, 2, length(value) - 2))
            if (value == "true" || value == "false") return value
            if (value ~ /^-?inf/) return value ~ /^-/ ? "\"-Infinity\"" : "\"Infinity\""
            if (value == "nan") return "\"NaN\""
            if (value ~ /^-?[0-9]/)  # 64-bit integers are JSON strings
                return type[message[depth] "." key] ~ /^(u?int64|sint64|s?fixed64)$/ ? "\"" value "\"" : value
            return "\"" value "\""  # an enum value by name
        }
        {
            line = $0; sub(/^[ \t]+/, "", line)
            if (line == "") next
            if (line == "}") { close_array(depth); printf "}"; depth--; next }
            if (line ~ /^[A-Za-z_][A-Za-z0-9_]* \{$/) {
                key = substr(line, 1, length(line) - 2)
                start_key(key)
                depth++; message[depth] = type[message[depth - 1] "." key]; first[depth] = 1; open_array[depth] = ""
                printf "{"; next
            }
            split_at = index(line, ": ")
            key = substr(line, 1, split_at - 1)
            start_key(key)
            printf "%s", json_value(key, substr(line, split_at + 2))
        }
        END { close_array(depth); print "}" }
    '
}

unescape() {  # the body of a text-format string literal -> its raw bytes (octal escapes, \" \' \\ \n \t)
    local s=$1 out="" i=0 next
    while ((i < ${#s})); do
        if [[ ${s:i:1} == '\' ]]; then
            next=${s:i+1:1}
            case $next in
                [0-7]) out+=$(printf "\\${s:i+1:3}"); i=$((i + 4)) ;;
                n) out+=$'\n'; i=$((i + 2)) ;;
                t) out+=$'\t'; i=$((i + 2)) ;;
                *) out+=$next; i=$((i + 2)) ;;
            esac
        else
            out+=${s:i:1}
            i=$((i + 1))
        fi
    done
    printf '%s' "$out"
}

# ---- frames -------------------------------------------------------------------------------------------------

be() {  # be N BYTES: N as BYTES big-endian bytes on stdout
    local n=$1 bytes=$2 format=""
    for ((shift_bits = 8 * (bytes - 1); shift_bits >= 0; shift_bits -= 8)); do
        format+=$(printf '\\x%02x' $(((n >> shift_bits) & 255)))
    done
    printf "$format"
}

frame() {  # frame TYPE FLAGS STREAM_ID PAYLOAD_FILE: one whole frame on stdout
    printf 'R2EC\x01'
    be "$1" 1
    be "$2" 2
    be "$3" 4
    be "$(wc -c <"$4")" 4
    cat "$4"
}

# ---- the call -----------------------------------------------------------------------------------------------

call() {  # call METHOD_PATH REQUEST_TYPE REQUEST_TEXT: leaves the answer's frames in $work/answer
    local header="method: $(quote "$1") timeout_ms: $((timeout_s * 1000))"
    [[ -n $token ]] && header+=" metadata { key: \"authorization\" value: $(quote "Bearer $token") }"
    encode CallHeader "$header" "$work/header.bin"
    encode "$2" "$3" "$work/request.bin"
    { frame 1 0 1 "$work/header.bin"; frame 2 1 1 "$work/request.bin"; } >"$work/frames.bin"
    # socat half-closes after the request; the server answers every call it opened, then closes.
    if ! socat -t "$timeout_s" -T "$timeout_s" - "TCP:$host:$port" <"$work/frames.bin" >"$work/answer" \
        2>"$work/socat.err"; then
        fail UNAVAILABLE "cannot reach $host:$port: $(tail -n 1 "$work/socat.err")"
    fi
}

# Walks the answer's frames: MESSAGE payloads of stream 1 go to $work/message.N; the TRAILER's status is checked.
read_answer() {
    local size offset=0 count=0 fields type stream length
    size=$(wc -c <"$work/answer")
    while ((offset + 16 <= size)); do
        read -r -a fields <<<"$(od -An -tu1 -v -j "$offset" -N 16 "$work/answer" | tr '\n' ' ')"
        if [[ "${fields[*]:0:5}" != "82 50 69 67 1" ]]; then
            fail INTERNAL "the server sent bytes that are not an r2ec v1 frame at offset $offset"
        fi
        type=${fields[5]}
        stream=$(((fields[8] << 24) | (fields[9] << 16) | (fields[10] << 8) | fields[11]))
        length=$(((fields[12] << 24) | (fields[13] << 16) | (fields[14] << 8) | fields[15]))
        ((offset + 16 + length <= size)) || fail UNAVAILABLE "connection closed in the middle of a frame"
        tail -c +$((offset + 17)) "$work/answer" | head -c "$length" >"$work/payload"
        offset=$((offset + 16 + length))
        case $type in
            2) if ((stream == 1)); then cp "$work/payload" "$work/message.$count"; count=$((count + 1)); fi ;;
            3) if ((stream == 1)); then check_status "$work/payload"; return 0; fi ;;
            7) goaway "$work/payload" ;;
        esac
    done
    fail UNAVAILABLE "the connection closed before the call's TRAILER"
}

field_of() {  # field_of NAME TEXT: the value of a top-level scalar field in text format
    local line
    while IFS= read -r line; do
        if [[ $line =~ ^$1:\ (.*)$ ]]; then
            local value=${BASH_REMATCH[1]}
            [[ $value == \"*\" ]] && value=$(unescape "${value:1:${#value}-2}")
            printf '%s' "$value"
            return 0
        fi
    done <<<"$2"
}

check_status() {
    local text code
    text=$(decode Status "$1")
    code=$(field_of code "$text")
    code=${code:-0}
    ((code == 0)) && return 0
    fail "${code_names[code]:-UNKNOWN}" "$(field_of message "$text")$(
        field=$(field_of field "$text"); [[ -n $field ]] && printf ' (field %s)' "$field")"
}

goaway() {
    local text code
    text=$(decode GoAway "$1")
    code=$(field_of code "$text")
    code=${code:-0}
    ((code == 0)) && return 0  # a graceful drain: the call may still be answered
    fail "${code_names[code]:-UNKNOWN}" "connection closed by the server (GOAWAY): $(field_of message "$text")"
}

# print_scored TEXT: "rank item_id score title" per ScoredItem block of a RecommendResponse-like message
print_scored() {
    local line item_id="" title="" score=0 rank=0 depth=0
    while IFS= read -r line; do
        line=${line#"${line%%[![:space:]]*}"}
        case $line in
            "items {") depth=1; item_id=""; title=""; score=0; rank=0 ;;
            "}") if ((depth)); then printf '%s %s %s %s\n' "$rank" "$item_id" "$score" "$title"; depth=0; fi ;;
            item_id:*) ((depth)) && [[ $line =~ ^item_id:\ \"(.*)\"$ ]] && item_id=$(unescape "${BASH_REMATCH[1]}") ;;
            title:*) ((depth)) && [[ $line =~ ^title:\ \"(.*)\"$ ]] && title=$(unescape "${BASH_REMATCH[1]}") ;;
            score:*) ((depth)) && score=${line#score: } ;;
            rank:*) ((depth)) && rank=${line#rank: } ;;
        esac
    done <<<"$1"
    return 0
}

print_items() {  # "item_id year title" per Item of a GetItemsResponse
    local line item_id="" title="" year=0 depth=0
    while IFS= read -r line; do
        line=${line#"${line%%[![:space:]]*}"}
        case $line in
            "items {") depth=1; item_id=""; title=""; year=0 ;;
            "}") if ((depth)); then printf '%s %s %s\n' "$item_id" "$year" "$title"; depth=0; fi ;;
            item_id:*) ((depth)) && [[ $line =~ ^item_id:\ \"(.*)\"$ ]] && item_id=$(unescape "${BASH_REMATCH[1]}") ;;
            title:*) ((depth)) && [[ $line =~ ^title:\ \"(.*)\"$ ]] && title=$(unescape "${BASH_REMATCH[1]}") ;;
            year:*) ((depth)) && year=${line#year: } ;;
        esac
    done <<<"$1"
    return 0
}

ids_text() {  # ids_text FIELD ID...: repeated string field entries
    local field=$1 id text=""
    shift
    for id in "$@"; do text+="$field: $(quote "$id") "; done
    printf '%s' "$text"
}

# show MESSAGE_TYPE PRINTER: the answer of the call, as JSON with --json, else through PRINTER (a function reading
# the decoded text format from $1)
show() {
    local text
    text=$(decode "$1" "$work/message.0")
    if ((json)); then
        printf '%s\n' "$text" | to_json "$1"
    else
        "$2" "$text"
    fi
}

print_text() { printf '%s\n' "$1"; }

print_health() {
    local status
    status=$(field_of status "$1")
    echo "${status:-UNKNOWN}"
}

print_recorded() {
    local recorded duplicates
    recorded=$(field_of recorded "$1")
    duplicates=$(field_of duplicates "$1")
    echo "recorded ${recorded:-0} duplicates ${duplicates:-0}"
}

print_events() {  # "timestamp item_id kind rating" per Event of a GetUserHistoryResponse
    local line item_id="" timestamp=0 kind="" rating=0 depth=0
    while IFS= read -r line; do
        line=${line#"${line%%[![:space:]]*}"}
        case $line in
            "events {") depth=1; item_id=""; timestamp=0; kind=""; rating=0 ;;
            "}") if ((depth)); then printf '%s %s %s %s\n' "$timestamp" "$item_id" "${kind:-interaction}" "$rating"; depth=0; fi ;;
            item_id:*) ((depth)) && [[ $line =~ ^item_id:\ \"(.*)\"$ ]] && item_id=$(unescape "${BASH_REMATCH[1]}") ;;
            kind:*) ((depth)) && [[ $line =~ ^kind:\ \"(.*)\"$ ]] && kind=$(unescape "${BASH_REMATCH[1]}") ;;
            timestamp:*) ((depth)) && timestamp=${line#timestamp: } ;;
            rating:*) ((depth)) && rating=${line#rating: } ;;
        esac
    done <<<"$1"
    return 0
}

model_text="model: $(quote "$model")"
case $command in
    health)
        call /r2ec.v1.Health/Check HealthCheckRequest "service: $(quote "${args[0]:-}")"
        read_answer
        show HealthCheckResponse print_health
        ;;
    recommend)
        ((${#args[@]})) || [[ -n $user ]] || { echo "r2ec.sh: recommend needs item ids or --user" >&2; usage; }
        history=""
        for id in "${args[@]}"; do history+="history { item_id: $(quote "$id") } "; done
        call /r2ec.v1.Recommender/Recommend RecommendRequest \
            "user_id: $(quote "$user") $history top_k: $top_k $model_text"
        read_answer
        show RecommendResponse print_scored
        ;;
    similar)
        ((${#args[@]} == 1)) || { echo "r2ec.sh: similar needs one item id" >&2; usage; }
        call /r2ec.v1.Recommender/SimilarItems SimilarItemsRequest \
            "item_id: $(quote "${args[0]}") top_k: $top_k $model_text"
        read_answer
        show SimilarItemsResponse print_scored
        ;;
    items)
        ((${#args[@]})) || { echo "r2ec.sh: items needs item ids" >&2; usage; }
        call /r2ec.v1.Recommender/GetItems GetItemsRequest "$(ids_text item_ids "${args[@]}") $model_text"
        read_answer
        show GetItemsResponse print_items
        ;;
    info)
        call /r2ec.v1.Recommender/ModelInfo ModelInfoRequest "model: $(quote "${args[0]:-$model}")"
        read_answer
        show ModelInfoResponse print_text
        ;;
    record)
        ((${#args[@]} >= 2)) || { echo "r2ec.sh: record needs a user id and item ids" >&2; usage; }
        events=""
        for id in "${args[@]:1}"; do
            events+="events { user_id: $(quote "${args[0]}") item_id: $(quote "$id") kind: $(quote "$kind") } "
        done
        call /r2ec.v1.Events/RecordEvents RecordEventsRequest "$events"
        read_answer
        show RecordEventsResponse print_recorded
        ;;
    history)
        ((${#args[@]} == 1)) || { echo "r2ec.sh: history needs one user id" >&2; usage; }
        call /r2ec.v1.Events/GetUserHistory GetUserHistoryRequest "user_id: $(quote "${args[0]}") limit: $limit"
        read_answer
        show GetUserHistoryResponse print_events
        ;;
    *)
        echo "r2ec.sh: unknown command $command" >&2
        usage
        ;;
esac

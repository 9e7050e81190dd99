<?php
// Datasync.php: emits row changes from PHP through libdatasync, by PHP's FFI extension.
//
//   require 'Datasync.php';
//   $p = new Datasync\Producer('/etc/datasync/node-a.conf');
//   $p->emit('update', 'users', ['id' => 7], ['id' => 7, 'name' => 'Ada']);
//
// Needs PHP >= 7.4 with the FFI extension (Debian's php-cli has it) and
// libdatasync.so.0 (make install, or DATASYNC_LIB=/path/to/libdatasync.so.0).
// FFI is allowed by default in the CLI only (ffi.enable=preload); under
// php-fpm or mod_php set ffi.enable=true, or preload this file.
//
// One Producer per process: a forked child (php-fpm workers are forked from
// their master) must make its own, so create it in the request's code, not in
// a preload script. The library's log callback is not offered: it may run on
// the library's I/O thread, and PHP cannot run a callback there.

declare(strict_types=1);

namespace Datasync;

/**
 * A failed libdatasync call, or input refused before any call.
 *
 * getCode() is the library's DS_E* code (negative, as in datasync.h),
 * errorName() its name ("ESCHEMA"), getMessage() says the call, the name,
 * the code's text and the library's detail (ds_producer_errmsg), which names
 * the offending field for bad input.
 */
class DatasyncException extends \RuntimeException
{
    private string $errorName;
    private string $detail;

    public function __construct(string $call, int $code, string $errorName,
                                string $text, string $detail = '',
                                ?\Throwable $previous = null)
    {
        $this->errorName = $errorName;
        $this->detail = $detail;
        $message = "$call: $errorName: $text";
        if ($detail !== '' && $detail !== $text) {
            $message .= ": $detail";
        }
        parent::__construct($message, $code, $previous);
    }

    /** The code's name without prefix, e.g. "ESCHEMA" (ds_err_name). */
    public function errorName(): string
    {
        return $this->errorName;
    }

    /** The library's detail for this error alone ("" if none). */
    public function detail(): string
    {
        return $this->detail;
    }
}

/**
 * A binary column value (BLOB, VARBINARY...): travels as {"base64": "..."}.
 * A plain PHP string must be UTF-8 text; wrap raw bytes in this.
 */
final class Binary implements \JsonSerializable
{
    public string $bytes;

    public function __construct(string $bytes)
    {
        $this->bytes = $bytes;
    }

    public function jsonSerialize(): array
    {
        return ['base64' => base64_encode($this->bytes)];
    }
}

/**
 * A libdatasync producer (ds_producer) configured by a datasync.conf file.
 *
 * Not for sharing across processes (see the file's header). With
 * producer.mode = sync (the default) emit() returns once the broker confirmed
 * the change or it is safely in the local spool; with async, call flush().
 */
final class Producer
{
    public const CREATE = 'create';
    public const UPDATE = 'update';
    public const DELETE = 'delete';

    // ds_op of datasync.h.
    private const OPS = ['create' => 1, 'update' => 2, 'delete' => 3];
    // DS_EINVAL and DS_ECLOSED of datasync.h, for errors found on this side.
    private const EINVAL = -1;
    private const ECLOSED = -21;
    // DS_ERRBUF_SIZE of datasync.h: holds any detail in full.
    private const ERRBUF_SIZE = 512;

    // The subset of datasync.h that this class calls, as FFI reads it (no
    // preprocessor: DS_EXPORT dropped, ds_op passed as int).
    private const CDEF = <<<'C'
typedef struct ds_options ds_options;
typedef struct ds_producer ds_producer;
typedef struct ds_producer_stats {
    uint64_t emitted;
    uint64_t confirmed;
    uint64_t spooled;
    uint64_t unroutable;
    uint64_t nacked;
    uint64_t reconnects;
    uint64_t refused;
    uint64_t spool_bytes;
    uint64_t lost;
} ds_producer_stats;
const char *ds_strerror(int err);
const char *ds_err_name(int err);
const char *ds_version(void);
ds_options *ds_options_new(void);
int ds_options_load(ds_options *opts, const char *path);
int ds_options_set(ds_options *opts, const char *key, const char *value);
const char *ds_options_errmsg(const ds_options *opts);
void ds_options_free(ds_options *opts);
int ds_producer_new(ds_producer **out, const ds_options *opts, char *err,
                    size_t errlen);
void ds_producer_free(ds_producer *p);
int ds_emit(ds_producer *p, int op, const char *table, const char *key_json,
            const char *data_json);
int ds_emit_event(ds_producer *p, const char *event_json);
int ds_flush(ds_producer *p, int timeout_ms);
int ds_producer_stats_get(ds_producer *p, ds_producer_stats *out, size_t size);
const char *ds_producer_errmsg(const ds_producer *p);
C;

    private static ?\FFI $ffi = null;

    /** @var \FFI\CData|null ds_producer*, null once closed */
    private $handle = null;

    /**
     * Loads the configuration file (every key has a default), applies
     * $set, e.g. ['producer.mode' => 'async'] ("section.key" as in
     * ds_options_set), and creates the producer. Connecting to the broker
     * is lazy: an unreachable broker does not fail this, changes are spooled.
     *
     * @param array<string, string|int> $set
     * @throws DatasyncException EIO, ECONFIG (message "file:line: reason"),
     *         ESPOOL, ENOMEM; also when the library cannot be loaded.
     */
    public function __construct(string $configPath, array $set = [])
    {
        $ffi = self::ffi();
        $opts = $ffi->ds_options_new();
        if ($opts === null || \FFI::isNull($opts)) {
            throw self::error('ds_options_new', -2, '');
        }
        try {
            $rc = $ffi->ds_options_load($opts, $configPath);
            if ($rc !== 0) {
                throw self::error('ds_options_load', $rc, $ffi->ds_options_errmsg($opts));
            }
            foreach ($set as $key => $value) {
                $rc = $ffi->ds_options_set($opts, (string)$key, (string)$value);
                if ($rc !== 0) {
                    throw self::error('ds_options_set', $rc, $ffi->ds_options_errmsg($opts));
                }
            }
            $out = $ffi->new('ds_producer *');
            $err = $ffi->new('char[' . self::ERRBUF_SIZE . ']');
            $rc = $ffi->ds_producer_new(\FFI::addr($out), $opts, $err, self::ERRBUF_SIZE);
            if ($rc !== 0) {
                throw self::error('ds_producer_new', $rc, \FFI::string($err));
            }
            $this->handle = $out;
        } finally {
            $ffi->ds_options_free($opts);
        }
    }

    /**
     * Emits one change of a row: $op is 'create', 'update' or 'delete';
     * $key the primary-key columns (at least one, non-null scalars); $data
     * the whole row after the change, null for a delete. Values: string
     * (UTF-8), int, float, bool, null, Binary, DateTimeInterface (sent as
     * MySQL prints it). DECIMALs belong in strings, to stay exact.
     *
     * @param array<string, mixed> $key
     * @param array<string, mixed>|null $data
     * @throws DatasyncException EINVAL/EJSON/ESCHEMA for bad input (nothing
     *         was published; the message names the field), ETOOBIG (larger
     *         than apply.max_message_bytes), EUNROUTABLE, ESPOOL (neither
     *         the broker nor the spool took the change: lost), ECLOSED.
     */
    public function emit(string $op, string $table, array $key, ?array $data = null): void
    {
        $p = $this->open('ds_emit');
        if (!isset(self::OPS[$op])) {
            throw new DatasyncException('ds_emit', self::EINVAL, 'EINVAL',
                self::ffi()->ds_strerror(self::EINVAL),
                "op: \"$op\" is not one of create, update, delete");
        }
        $keyJson = self::encode('key', $key);
        $dataJson = $data === null ? null : self::encode('data', $data);
        $rc = self::ffi()->ds_emit($p, self::OPS[$op], $table, $keyJson, $dataJson);
        if ($rc !== 0) {
            throw $this->failure('ds_emit', $rc);
        }
    }

    /**
     * Emits a whole change event (JSON text) as it is, keeping its id,
     * origin and hlc: for replaying events. Validated first.
     *
     * @throws DatasyncException as emit().
     */
    public function emitEvent(string $json): void
    {
        $p = $this->open('ds_emit_event');
        $rc = self::ffi()->ds_emit_event($p, $json);
        if ($rc !== 0) {
            throw $this->failure('ds_emit_event', $rc);
        }
    }

    /**
     * Waits until every change emitted so far is confirmed or spooled, at
     * most $timeoutMs (< 0: the configuration's producer.confirm_timeout_ms).
     *
     * @throws DatasyncException ETIMEOUT, ESPOOL (a change since the last
     *         flush was lost: the spool refused it), EUNROUTABLE (a change
     *         since the last flush had no queue bound), ECLOSED.
     */
    public function flush(int $timeoutMs = -1): void
    {
        $p = $this->open('ds_flush');
        $rc = self::ffi()->ds_flush($p, $timeoutMs);
        if ($rc !== 0) {
            throw $this->failure('ds_flush', $rc);
        }
    }

    /**
     * Counters since creation: emitted, confirmed, spooled, unroutable,
     * nacked, reconnects, refused (connections the broker refused: wrong
     * password, vhost or permission, or no datasync setup), spool_bytes
     * (a gauge: bytes waiting in the spool now), lost (changes the spool
     * refused while the broker was away). ds_producer_stats field by
     * field: man 3 libdatasync, "Counters and errors".
     *
     * @return array<string, int>
     */
    public function stats(): array
    {
        $p = $this->open('ds_producer_stats_get');
        $st = self::ffi()->new('ds_producer_stats');
        // The size says which fields this binding knows: a newer library
        // fills just those.
        self::ffi()->ds_producer_stats_get($p, \FFI::addr($st), \FFI::sizeof($st));
        return [
            'emitted' => $st->emitted,
            'confirmed' => $st->confirmed,
            'spooled' => $st->spooled,
            'unroutable' => $st->unroutable,
            'nacked' => $st->nacked,
            'reconnects' => $st->reconnects,
            'refused' => $st->refused,
            'spool_bytes' => $st->spool_bytes,
            'lost' => $st->lost,
        ];
    }

    /**
     * Flushes for up to producer.confirm_timeout_ms, spools what is still
     * unconfirmed, and frees the producer. Safe to call twice; the
     * destructor calls it.
     */
    public function close(): void
    {
        if ($this->handle !== null) {
            $p = $this->handle;
            $this->handle = null;
            self::ffi()->ds_producer_free($p);
        }
    }

    public function __destruct()
    {
        $this->close();
    }

    /** The library's version, "MAJOR.MINOR.PATCH". */
    public static function libraryVersion(): string
    {
        return self::ffi()->ds_version();
    }

    // The FFI binding, made once per process.
    private static function ffi(): \FFI
    {
        if (self::$ffi !== null) {
            return self::$ffi;
        }
        $lib = getenv('DATASYNC_LIB');
        if ($lib === false || $lib === '') {
            $lib = 'libdatasync.so.0';
        }
        if (!extension_loaded('FFI')) {
            throw new DatasyncException('load', self::EINVAL, 'EINVAL',
                'PHP\'s FFI extension is not loaded', 'install or enable it (php -m lists FFI)');
        }
        try {
            self::$ffi = \FFI::cdef(self::CDEF, $lib);
        } catch (\FFI\Exception $e) {
            throw new DatasyncException('load', self::EINVAL, 'EINVAL',
                "cannot load $lib", $e->getMessage()
                . ' (set DATASYNC_LIB to the library\'s path; outside the CLI FFI needs ffi.enable=true)',
                $e);
        }
        return self::$ffi;
    }

    /** @return \FFI\CData */
    private function open(string $call)
    {
        if ($this->handle === null) {
            throw self::error($call, self::ECLOSED, 'the producer was closed');
        }
        return $this->handle;
    }

    private function failure(string $call, int $rc): DatasyncException
    {
        return self::error($call, $rc, self::ffi()->ds_producer_errmsg($this->handle));
    }

    private static function error(string $call, int $rc, string $detail): DatasyncException
    {
        $ffi = self::ffi();
        return new DatasyncException($call, $rc, $ffi->ds_err_name($rc), $ffi->ds_strerror($rc), $detail);
    }

    // JSON of the key or data columns. Checked value by value first so that
    // an error names the column (json_encode would only say "malformed").
    private static function encode(string $what, array $columns): string
    {
        $out = [];
        foreach ($columns as $name => $value) {
            $field = "$what.$name";
            if (is_int($name)) {
                throw self::inputError("$what: column names are strings; got a list (position $name)");
            }
            if (is_string($value)) {
                if (preg_match('//u', $value) !== 1) {
                    throw self::inputError("$field: not valid UTF-8; wrap binary values in Datasync\\Binary");
                }
            } elseif (is_float($value)) {
                if (!is_finite($value)) {
                    throw self::inputError("$field: $value cannot travel as JSON");
                }
            } elseif ($value instanceof \DateTimeInterface) {
                $value = $value->format((int)$value->format('u') === 0 ? 'Y-m-d H:i:s' : 'Y-m-d H:i:s.u');
            } elseif (!($value === null || is_int($value) || is_bool($value) || $value instanceof Binary)) {
                $type = is_object($value) ? get_class($value) : gettype($value);
                throw self::inputError("$field: type $type"
                    . ' is not a column value (string, int, float, bool, null, Datasync\\Binary, DateTimeInterface)');
            }
            $out[$name] = $value;
        }
        // An empty PHP array would be "[]"; the library wants an object and
        // names the field when it is empty.
        $json = json_encode((object)$out, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES
            | JSON_PRESERVE_ZERO_FRACTION);
        if ($json === false) {
            throw self::inputError("$what: " . json_last_error_msg());
        }
        return $json;
    }

    private static function inputError(string $detail): DatasyncException
    {
        return self::error('ds_emit', self::EINVAL, $detail);
    }
}

/*
 * erpq_scripts.h - our Lua scripts for the Bull protocol.
 *
 * The scripts live in core/lua (one .lua file each) and are compiled into the binary by the
 * build (core/embed_lua.cmake). Every script is prefixed with the shared
 * helpers of core/lua/_prelude.lua. erpq_scripts_init() assembles them and
 * computes their SHA1 once per process (it is idempotent and thread-safe);
 * callers send EVALSHA and fall back to EVAL with the full source when Redis
 * answers NOSCRIPT (see erpq_cmd_use_eval()).
 *
 * The scripts' keys, arguments and replies are documented at the top of each
 * .lua file; erpq_bull.c builds the commands and parses their replies.
 */
#ifndef ERPQ_SCRIPTS_H
#define ERPQ_SCRIPTS_H

typedef enum erpq_lua_id {
  ERPQ_LUA_ADD,
  ERPQ_LUA_STEP,
  ERPQ_LUA_EXTEND,
  ERPQ_LUA_STALLED,
  ERPQ_LUA_DELAYED,
  ERPQ_LUA_PAUSE,
  ERPQ_LUA_PROMOTE,
  ERPQ_LUA_REMOVE,
  ERPQ_LUA_REPROCESS,
  ERPQ_LUA_PROGRESS,
  ERPQ_LUA_LOG,
  ERPQ_LUA_HANDBACK,
  ERPQ_LUA_UNCLAIMED,
  ERPQ_LUA_CLEAN,
  ERPQ_LUA_REMOVE_REPEATABLE,
  ERPQ_LUA_STATE,
  ERPQ_LUA_RATELIMIT, /* The HTTP API's rate limits; not a bull operation. */
  ERPQ_LUA_LIST,      /* Jobs of one state, newest first, with their hashes. */
  ERPQ_LUA__COUNT
} erpq_lua_id;

/* Assembles all scripts. Returns 0, or -ENOMEM / -ENOENT (a script missing
 * from the build, which is a packaging bug). */
int erpq_scripts_init(void);

/* The 40-character hex SHA1 and the full source of a script. Both are
 * static strings owned by this module; erpq_scripts_init() must have
 * succeeded. */
const char *erpq_script_sha(erpq_lua_id id);
const char *erpq_script_src(erpq_lua_id id);
const char *erpq_script_name(erpq_lua_id id);

#endif

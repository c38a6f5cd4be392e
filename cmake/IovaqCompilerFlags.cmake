# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# Warnings and sanitizers.
#
# iovaq_warnings: an INTERFACE target with the project's warning set (STYLE.md "Build"); every
# target built from this repository links it. Sanitizer flags are global (compile and link of
# every target), because a sanitized library must be linked into sanitized programs.

set(IOVAQ_C_WARNINGS
	-Wall -Wextra -Wshadow -Wconversion -Wmissing-prototypes -Wvla -Wstrict-prototypes
	-Wpointer-arith)
# The same minus the C-only warnings.
set(IOVAQ_CXX_WARNINGS
	-Wall -Wextra -Wshadow -Wconversion -Wvla -Wpointer-arith)

add_library(iovaq_warnings INTERFACE)
target_compile_options(iovaq_warnings INTERFACE
	"$<$<COMPILE_LANGUAGE:C>:${IOVAQ_C_WARNINGS}>"
	"$<$<COMPILE_LANGUAGE:CXX>:${IOVAQ_CXX_WARNINGS}>"
	$<$<BOOL:${IOVAQ_WERROR}>:-Werror>)

# --- Sanitizers ------------------------------------------------------------------------------
set(_iovaq_known_sanitize "" "address" "undefined" "address,undefined" "undefined,address" "thread")
if(NOT IOVAQ_SANITIZE IN_LIST _iovaq_known_sanitize)
	message(FATAL_ERROR "IOVAQ_SANITIZE='${IOVAQ_SANITIZE}': use empty, "
		"'address,undefined' or 'thread' (or 'address' or 'undefined' alone)")
endif()

if(IOVAQ_SANITIZE)
	set(_san -fsanitize=${IOVAQ_SANITIZE} -fno-omit-frame-pointer)
	if(IOVAQ_SANITIZE MATCHES "undefined")
		# Every UBSan report is fatal, so that a test fails rather than printing and going on.
		list(APPEND _san -fno-sanitize-recover=all)
	endif()
	add_compile_options(${_san})
	add_link_options(${_san})
	unset(_san)
endif()

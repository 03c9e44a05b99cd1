"""Optional integrations with other tools (each behind its extra; nothing imported by ``xned``)."""

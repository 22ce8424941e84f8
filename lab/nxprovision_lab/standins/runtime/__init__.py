"""Programs copied into the stand-in archives; they run on lab hosts with the standard library only."""

package com.amazonaws.services.lambda.runtime;

import java.io.InputStream;
import java.io.OutputStream;
import java.lang.reflect.Type;

/** A serializer a function may provide (through java.util.ServiceLoader) to replace the
 * runtime's own JSON mapping of its handler's input and output. */
public interface CustomPojoSerializer {
    <T> T fromJson(InputStream input, Type type);

    <T> T fromJson(String input, Type type);

    <T> void toJson(T value, OutputStream output, Type type);
}
